-- Replication origins the workers can mark their write-back sessions with.
--
-- Every write-back is itself a row change: PostgreSQL decodes it (the whole analysis document),
-- the reader publishes it and the worker reads it only to skip it (the "echo"). A worker run
-- with --mark-write-backs marks each of its sessions with one of these origins, so its
-- transactions commit under it, and a reader run with --exclude-origins pipeline_writeback_
-- asks wal2json to drop them (filter-origins) before they are decoded. Both are off by default.
-- Marked write-backs are also left out by anything else that filters by origin (a PostgreSQL
-- 16+ subscription with origin = none).
--
-- An origin serves one session at a time, and an origin once used keeps one of the server's
-- origin states (max_replication_slots; PostgreSQL 18: max_active_replication_origins) until it
-- is dropped: a connection takes a free one (pipeline_writeback_origin_setup), preferring those
-- that already hold a state, or, with none free, goes unmarked (its write-backs are then
-- captured like any other change). Origins are cluster-wide, like roles: databases of the same
-- cluster share the pool. Creating and using them takes a superuser; without one the migration
-- goes on with a notice, and nothing can be marked.
DO $$
DECLARE
    origin text;
BEGIN
    IF (SELECT count(*) FROM pg_replication_origin
        WHERE roname ~ '^pipeline_writeback_([0-9]|[1-5][0-9]|6[0-3])$') = 64 THEN
        RETURN;
    END IF;
    -- Migrations of other databases of the cluster may be creating them at the same moment,
    -- and two creators of one name deadlock: the first to take the catalog's lock creates all,
    -- the others then find them (in READ COMMITTED each statement sees what committed before
    -- it; above it, the unique violation is caught).
    LOCK TABLE pg_replication_origin IN EXCLUSIVE MODE;
    FOR i IN 0..63 LOOP
        origin := 'pipeline_writeback_' || i;
        CONTINUE WHEN EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = origin);
        BEGIN
            PERFORM pg_replication_origin_create(origin);
        EXCEPTION WHEN unique_violation THEN
            -- Created meanwhile, seen only now (a transaction isolation above READ COMMITTED).
        END;
    END LOOP;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'cannot create replication origins (a superuser is needed): workers cannot mark their write-backs, and a reader cannot exclude them';
END
$$;

-- Marks the calling session with a free write-back origin; returns its name, or NULL when none
-- is free. Origins that already hold an origin state are tried first, so the pool does not take
-- more of max_replication_slots' states than sessions need.
CREATE OR REPLACE FUNCTION pipeline_writeback_origin_setup() RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    origin text;
BEGIN
    FOR origin IN
        SELECT o.roname
        FROM pg_replication_origin o
        LEFT JOIN pg_replication_origin_status s ON s.local_id = o.roident
        WHERE starts_with(o.roname, 'pipeline_writeback_')
        ORDER BY s.local_id IS NULL, random()
    LOOP
        BEGIN
            PERFORM pg_replication_origin_session_setup(origin);
            RETURN origin;
        EXCEPTION WHEN object_in_use OR configuration_limit_exceeded THEN
            -- Another session holds it, or no origin state is free for it.
        END;
    END LOOP;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION pipeline_writeback_origin_setup() IS
    '워커의 write-back 세션에 비어 있는 복제 origin(pipeline_writeback_N)을 붙인다. 리더가 --exclude-origins 로 이 origin 의 변경을 캡처하지 않게 할 수 있다. 비어 있는 것이 없으면 NULL.';
