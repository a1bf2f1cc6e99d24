-- Shared types and functions used by every later migration.
--
-- Every statement here is safe to run twice: types are created only when
-- missing, functions are CREATE OR REPLACE.

-- Five elements (오행) and yin/yang (음양), as stored in ganji_metadata.
DO $$
BEGIN
    IF to_regtype('public.element_type') IS NULL THEN
        CREATE TYPE public.element_type AS ENUM ('목', '화', '토', '금', '수');
    END IF;
    IF to_regtype('public.yin_yang_type') IS NULL THEN
        CREATE TYPE public.yin_yang_type AS ENUM ('음', '양');
    END IF;
END
$$;

COMMENT ON TYPE public.element_type IS '오행: 목(wood) 화(fire) 토(earth) 금(metal) 수(water)';
COMMENT ON TYPE public.yin_yang_type IS '음양: 음(yin) 양(yang)';

-- UUID version 7 (RFC 9562): 48-bit Unix timestamp in milliseconds, then the
-- version nibble 0111, then random bits with the 10xx variant.
--
-- PostgreSQL 18 ships pg_catalog.uuidv7(); on 15-17 we provide public.uuidv7()
-- with the same name and signature, so `DEFAULT uuidv7()` resolves to the
-- built-in where there is one and to this function elsewhere.
--
-- Construction: start from a version-4 UUID (random, variant already 10),
-- overwrite its first 6 bytes with the big-endian millisecond timestamp, then
-- turn the version nibble 0100 into 0111 by setting bits 52 and 53 (set_bit
-- counts from the least significant bit of byte 0, so byte 6 holds bits 48-55).
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1
        FROM pg_proc
        WHERE proname = 'uuidv7'
          AND pronamespace = 'pg_catalog'::regnamespace
          AND pronargs = 0
    ) THEN
        EXECUTE $fn$
            CREATE OR REPLACE FUNCTION public.uuidv7() RETURNS uuid
            LANGUAGE sql
            VOLATILE
            PARALLEL SAFE
            AS $body$
                SELECT encode(
                    set_bit(
                        set_bit(
                            overlay(
                                uuid_send(gen_random_uuid())
                                PLACING substring(
                                    int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint)
                                    FROM 3
                                )
                                FROM 1 FOR 6
                            ),
                            52, 1
                        ),
                        53, 1
                    ),
                    'hex'
                )::uuid
            $body$
        $fn$;
        EXECUTE $c$
            COMMENT ON FUNCTION public.uuidv7() IS
                'UUID version 7 (time-ordered) for PostgreSQL < 18; 18+ uses pg_catalog.uuidv7()'
        $c$;
    END IF;
END
$$;

-- One trigger function for every table with an updated_at column.
CREATE OR REPLACE FUNCTION public.set_updated_at() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION public.set_updated_at() IS
    'BEFORE UPDATE trigger: stamps updated_at with the transaction start time';
