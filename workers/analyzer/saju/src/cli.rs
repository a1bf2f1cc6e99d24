//! The `chart` command: one chart from flags, or a JSONL stream of births to a JSONL
//! stream of `analysis_result` documents. The `analyzer` binary mounts [`ChartArgs`] as
//! its `chart` subcommand and calls [`run_chart`] with stdin and stdout.
//!
//! JSONL input, one object per line (unknown keys are ignored, blank lines skipped):
//!
//! ```text
//! {"birth": "1990-05-12T14:30:00+09:00", "gender": "M"}
//! {"lunar": {"year": 2020, "month": 4, "day": 15, "leap": true}, "time": "14:30", "gender": "F"}
//! {"date": "1990-05-12", "time": "14:30", "gender": "F"}
//! ```
//!
//! `birth` is an instant; `date` + `time` and `lunar` + `time` are readings of the
//! `--zone` civil clock. Each input line gives exactly one output line, in order: the
//! document, or `{"version":2,"error":"…"}` for a line that cannot be charted. Memory stays
//! constant whatever the input size (lines over 1 MiB are rejected as errors), and output
//! is flushed before each read that may block, so the command also works as a
//! request/response filter over a pipe.

use std::borrow::Cow;
use std::io::{self, BufRead, Write};

use serde::Deserialize;

use crate::analysis::Analysis;
use crate::calendar::{check_date, parse_clock_time, CivilDateTime, Instant};
use crate::error::Error;
use crate::json;
use crate::luck::YearLuck;
use crate::lunar::LunarDate;
use crate::pillars::{Birth, DayBoundary, Gender, Options, SolarTime, SEOUL_LONGITUDE};
use crate::solar_terms::TERM_NAMES;
use crate::tables::GANJI_60;
use crate::zone::Zone;

/// Longest accepted input line.
const MAX_LINE: usize = 1 << 20;

/// Output is handed to the writer once this much is pending.
const OUTPUT_CHUNK: usize = 64 * 1024;

/// Arguments of the `chart` command.
#[derive(Debug, Clone, clap::Args)]
pub struct ChartArgs {
    /// Birth instant in RFC 3339 (e.g. 2024-02-04T17:28:00+09:00) for a single chart.
    /// Required unless --jsonl.
    #[arg(
        long,
        env = "SAJU_BIRTH",
        required_unless_present = "jsonl",
        conflicts_with = "jsonl"
    )]
    pub birth: Option<String>,

    /// Gender for the single chart, M or F (sets the luck pillars' direction).
    /// Required with --birth; with --jsonl each line carries its own.
    #[arg(long, env = "SAJU_GENDER", required_unless_present = "jsonl")]
    pub gender: Option<Gender>,

    /// Read one JSON object per line from stdin and write one result per line to stdout.
    #[arg(long, env = "SAJU_JSONL")]
    pub jsonl: bool,

    /// Instead of the chart, print one year's luck for it (세운/월운): the pillar of the
    /// saju year beginning at that year's 입춘 with its ten gods and its interactions with
    /// the chart, and the twelve month pillars with their 절입 instants on --zone's clock.
    /// Years 1899..=2100. Needs --birth.
    #[arg(
        long,
        env = "SAJU_LUCK_YEAR",
        requires = "birth",
        conflicts_with = "jsonl"
    )]
    pub luck_year: Option<i32>,

    /// The chart conventions.
    #[command(flatten)]
    pub conventions: ConventionArgs,
}

/// The conventions a chart is computed with: the `chart` command's and the analyzer's
/// (the same flags and environment variables for both).
#[derive(Debug, Clone, clap::Args)]
pub struct ConventionArgs {
    /// Civil clock of the birth place: Asia/Seoul (with its history of offsets and
    /// daylight saving), UTC, or a fixed offset such as +09:00. Lunar input is the civil date
    /// on this clock. Default: Asia/Seoul.
    #[arg(long, env = "SAJU_ZONE", default_value = "Asia/Seoul")]
    pub zone: Zone,

    /// When the day pillar changes around 자시: midnight (at 00:00), split-jasi
    /// (야자시/조자시: day kept, next day's hour stem from 23:00) or jasi (at 23:00).
    /// Default: midnight.
    #[arg(long, env = "SAJU_DAY_BOUNDARY", default_value = "midnight")]
    pub day_boundary: DayBoundary,

    /// Clock for the day and hour pillars: none (civil clock), mean (local mean solar
    /// time at --longitude) or true (apparent solar time). Default: none.
    #[arg(long, env = "SAJU_SOLAR_TIME", default_value = "none")]
    pub solar_time: SolarTime,

    /// Longitude in degrees east for --solar-time mean|true. Default: 126.98 (Seoul).
    #[arg(long, env = "SAJU_LONGITUDE", default_value_t = SEOUL_LONGITUDE, allow_negative_numbers = true)]
    pub longitude: f64,

    /// 양인살 for which day stems: yang (the yang stems' 제왕 only) or all (yin stems too, the
    /// branch after their 건록). Default: yang.
    #[arg(long, env = "SAJU_YANGIN", default_value = "yang", value_parser = ["yang", "all"])]
    pub yangin: String,

    /// 홍염살 table: common (정 미, 신 유, 계 신) or variant (정 인, 신 술, 계 자). Default: common.
    #[arg(long, env = "SAJU_HONGYEOM", default_value = "common", value_parser = ["common", "variant"])]
    pub hongyeom: String,

    /// 괴강살 pillars: six (경진 경술 임진 임술 무술 무진) or four (경진 경술 임진 무술).
    /// Default: six.
    #[arg(long, env = "SAJU_GOEGANG", default_value = "six", value_parser = ["six", "four"])]
    pub goegang: String,

    /// 귀문관살 pairs: standard (자유 축오 인미 묘신 진해 사술) or wonjin (the 원진 pairs).
    /// Default: standard.
    #[arg(long, env = "SAJU_GWIMUN", default_value = "standard", value_parser = ["standard", "wonjin"])]
    pub gwimun: String,

    /// How the 12운성 are counted: hwato (양순음역, 무·기 with 병·정), suto (양순음역, 무·기 with
    /// 임·계) or dongsaeng (음양동생: yin stems forward like their yang sibling). Default: hwato.
    #[arg(long, env = "SAJU_UNSEONG", default_value = "hwato", value_parser = ["hwato", "suto", "dongsaeng"])]
    pub unseong: String,
}

impl ConventionArgs {
    /// The chart options these arguments select, validated.
    pub fn options(&self) -> Result<Options, Error> {
        let options = Options {
            zone: self.zone,
            day_boundary: self.day_boundary,
            solar_time: self.solar_time,
            longitude: self.longitude,
            stars: crate::stars::Schools {
                yangin_all_stems: self.yangin == "all",
                hongyeom_variant: self.hongyeom == "variant",
                goegang_four: self.goegang == "four",
                gwimun_as_wonjin: self.gwimun == "wonjin",
                unseong: match self.unseong.as_str() {
                    "suto" => crate::stars::Unseong::SuTo,
                    "dongsaeng" => crate::stars::Unseong::DongSaeng,
                    _ => crate::stars::Unseong::HwaTo,
                },
            },
        };
        options.validate()?;
        Ok(options)
    }
}

impl ChartArgs {
    /// The chart options these arguments select, validated.
    pub fn options(&self) -> Result<Options, Error> {
        self.conventions.options()
    }
}

/// Why the command failed as a whole (a bad JSONL line is not a failure: it gets an
/// error line and the stream goes on).
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// Reading input or writing output failed.
    #[error("chart I/O failed")]
    Io(#[from] io::Error),
    /// The single chart, or the options, are invalid.
    #[error("cannot chart: {0}")]
    Chart(#[source] Error),
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChartSummary {
    /// Documents written.
    pub charts: u64,
    /// Error lines written.
    pub errors: u64,
}

/// Runs the `chart` command: with `--birth` writes one document line to `output`;
/// with `--jsonl` streams `input` to `output` as described in the module doc.
pub fn run_chart(
    args: &ChartArgs,
    input: impl BufRead,
    mut output: impl Write,
) -> Result<ChartSummary, ChartError> {
    let options = args.options().map_err(ChartError::Chart)?;
    if !args.jsonl {
        let birth = args.birth.as_deref().unwrap_or_default();
        let birth = Birth::Instant(Instant::parse_rfc3339(birth).map_err(ChartError::Chart)?);
        let gender = args
            .gender
            .ok_or_else(|| ChartError::Chart(Error::parse("gender", "missing (M or F)")))?;
        let analysis = Analysis::compute(&birth, gender, &options).map_err(ChartError::Chart)?;
        let mut out = Vec::with_capacity(8192);
        match args.luck_year {
            Some(year) => {
                let luck = YearLuck::compute(&analysis.codes(), year).map_err(ChartError::Chart)?;
                serde_json::to_writer(&mut out, &year_luck_json(&luck, options.zone))
                    .map_err(io::Error::other)?;
            }
            None => json::write_analysis(&analysis, &mut out),
        }
        out.push(b'\n');
        output.write_all(&out)?;
        output.flush()?;
        return Ok(ChartSummary {
            charts: 1,
            errors: 0,
        });
    }
    stream(&options, input, output)
}

/// The `--luck-year` document: the year pillar, its ten gods and interactions with the
/// chart (positions name the chart's pillars and `luck` for the year's), and its months.
pub fn year_luck_json(luck: &YearLuck, zone: Zone) -> serde_json::Value {
    use serde_json::json;
    let pillar =
        |pos: u8| json!({"codes": [pos % 10, 10 + pos % 12], "ganji": GANJI_60[usize::from(pos)]});
    let interactions: Vec<serde_json::Value> = luck
        .interactions
        .iter()
        .map(|i| {
            let mut positions: Vec<&str> = i.position_names().collect();
            positions.push("luck");
            json!({
                "group": i.group.id,
                "category": i.group.category.name_ko(),
                "name": i.group.description,
                "positions": positions,
                "complete": i.complete,
            })
        })
        .collect();
    let months: Vec<serde_json::Value> = luck
        .months
        .iter()
        .map(|m| {
            let mut month = pillar(m.pillar);
            month["term"] = json!(TERM_NAMES[m.term]);
            month["starts"] = json!(rfc3339(m.starts, zone));
            month
        })
        .collect();
    let mut doc = pillar(luck.pillar);
    doc["year"] = json!(luck.year);
    doc["ten_gods"] = json!({
        "stem": luck.ten_gods[0].name_ko(),
        "branch": luck.ten_gods[1].name_ko(),
    });
    doc["interactions"] = json!(interactions);
    doc["months"] = json!(months);
    doc
}

/// An instant as RFC 3339 on `zone`'s clock, e.g. `2027-02-04T16:46:09+09:00`.
fn rfc3339(unix_seconds: i64, zone: Zone) -> String {
    let offset = zone.offset_at(unix_seconds);
    let c = CivilDateTime::from_clock_seconds(unix_seconds + i64::from(offset));
    let (sign, o) = (if offset < 0 { '-' } else { '+' }, offset.unsigned_abs());
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{sign}{:02}:{:02}",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        o / 3600,
        o / 60 % 60
    )
}

fn stream(
    options: &Options,
    mut input: impl BufRead,
    mut output: impl Write,
) -> Result<ChartSummary, ChartError> {
    let mut summary = ChartSummary::default();
    let mut out: Vec<u8> = Vec::with_capacity(OUTPUT_CHUNK + 4096);
    let mut carry: Vec<u8> = Vec::new();
    let mut overlong = false;
    loop {
        // The next read may block: hand over what is ready first.
        if !out.is_empty() {
            output.write_all(&out)?;
            output.flush()?;
            out.clear();
        }
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        let n = chunk.len();
        let mut start = 0;
        while let Some(pos) = chunk[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            if overlong {
                write_line_error(&mut out, &mut summary, "input line longer than 1 MiB");
                overlong = false;
                carry.clear();
            } else if carry.is_empty() {
                chart_line(&chunk[start..end], options, &mut out, &mut summary);
            } else {
                carry.extend_from_slice(&chunk[start..end]);
                chart_line(&carry, options, &mut out, &mut summary);
                carry.clear();
            }
            start = end + 1;
            if out.len() >= OUTPUT_CHUNK {
                output.write_all(&out)?;
                out.clear();
            }
        }
        if !overlong {
            carry.extend_from_slice(&chunk[start..]);
            if carry.len() > MAX_LINE {
                overlong = true;
                carry = Vec::new();
            }
        }
        input.consume(n);
    }
    if overlong {
        write_line_error(&mut out, &mut summary, "input line longer than 1 MiB");
    } else if !carry.is_empty() {
        chart_line(&carry, options, &mut out, &mut summary);
    }
    output.write_all(&out)?;
    output.flush()?;
    Ok(summary)
}

fn write_line_error(out: &mut Vec<u8>, summary: &mut ChartSummary, message: &str) {
    json::write_error(out, message);
    out.push(b'\n');
    summary.errors += 1;
}

fn chart_line(line: &[u8], options: &Options, out: &mut Vec<u8>, summary: &mut ChartSummary) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > MAX_LINE {
        return write_line_error(out, summary, "input line longer than 1 MiB");
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    match parse_line(line).and_then(|(birth, gender)| Analysis::compute(&birth, gender, options)) {
        Ok(analysis) => {
            json::write_analysis(&analysis, out);
            out.push(b'\n');
            summary.charts += 1;
        }
        Err(e) => write_line_error(out, summary, &e.to_string()),
    }
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow, default)]
    birth: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    date: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    time: Option<Cow<'a, str>>,
    #[serde(default)]
    lunar: Option<LunarInput>,
    #[serde(borrow, default)]
    gender: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct LunarInput {
    year: i64,
    month: i64,
    day: i64,
    #[serde(default)]
    leap: bool,
}

/// Parses one input object into a birth and gender.
pub fn parse_line(line: &[u8]) -> Result<(Birth, Gender), Error> {
    let line: Line<'_> = serde_json::from_slice(line).map_err(|e| {
        Error::parse(
            "input line",
            format!("not a JSON object of the expected shape: {e}"),
        )
    })?;
    let gender: Gender = line
        .gender
        .as_deref()
        .ok_or_else(|| Error::parse("gender", "missing (M or F)"))?
        .parse()?;
    let time = || -> Result<u32, Error> {
        parse_clock_time(
            line.time
                .as_deref()
                .ok_or_else(|| Error::parse("time", "missing (HH:MM)"))?,
        )
    };
    let birth = match (&line.birth, &line.date, &line.lunar) {
        (Some(b), None, None) => Birth::Instant(Instant::parse_rfc3339(b)?),
        (None, Some(d), None) => {
            let (y, m, dd) = parse_date(d)?;
            let t = time()?;
            Birth::Civil(CivilDateTime::new(
                y,
                m,
                dd,
                (t / 3600) as u8,
                (t / 60 % 60) as u8,
                (t % 60) as u8,
            )?)
        }
        (None, None, Some(l)) => {
            let narrow = |v: i64| u8::try_from(v).unwrap_or(u8::MAX);
            if !(1..=12).contains(&l.month) || !(1..=30).contains(&l.day) {
                return Err(Error::NoSuchLunarDay {
                    year: l.year,
                    month: l.month,
                    leap: l.leap,
                    day: l.day,
                    days: 0,
                });
            }
            let year = i32::try_from(l.year).map_err(|_| Error::LunarOutOfRange {
                date: crate::error::DateText {
                    year: l.year,
                    month: l.month,
                    day: l.day,
                },
            })?;
            Birth::Lunar {
                date: LunarDate {
                    year,
                    month: narrow(l.month),
                    day: narrow(l.day),
                    leap: l.leap,
                },
                time_of_day: time()?,
            }
        }
        (None, None, None) => {
            return Err(Error::parse(
                "input line",
                "needs one of birth, date + time, lunar + time",
            ))
        }
        _ => {
            return Err(Error::parse(
                "input line",
                "give only one of birth, date + time, lunar + time",
            ))
        }
    };
    Ok((birth, gender))
}

fn parse_date(text: &str) -> Result<(i32, u8, u8), Error> {
    let bad = || Error::parse("date", format!("{text:?} is not YYYY-MM-DD"));
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter().try_fold(0i64, |v, &c| {
            c.is_ascii_digit().then(|| v * 10 + i64::from(c - b'0'))
        })
    };
    let (y, m, d) = (
        num(0..4).ok_or_else(bad)?,
        num(5..7).ok_or_else(bad)?,
        num(8..10).ok_or_else(bad)?,
    );
    check_date(y, m, d)?;
    Ok((y as i32, m as u8, d as u8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        chart: ChartArgs,
    }

    fn args(extra: &[&str]) -> ChartArgs {
        let mut argv = vec!["chart"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).unwrap().chart
    }

    fn run_jsonl(input: &str) -> (Vec<serde_json::Value>, ChartSummary) {
        let mut out = Vec::new();
        let summary = run_chart(&args(&["--jsonl"]), input.as_bytes(), &mut out).unwrap();
        let lines = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (lines, summary)
    }

    #[test]
    fn single_chart() {
        let a = args(&["--birth", "2024-02-04T17:28:00+09:00", "--gender", "M"]);
        assert_eq!(a.conventions.zone, Zone::Seoul);
        assert_eq!(a.conventions.day_boundary, DayBoundary::Midnight);
        let mut out = Vec::new();
        run_chart(&a, io::empty(), &mut out).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(doc["ganji"][0], "갑진");
        assert_eq!(doc["codes"].as_array().unwrap().len(), 8);
        let bad = args(&["--birth", "1850-01-01T00:00:00Z", "--gender", "F"]);
        let e = run_chart(&bad, io::empty(), Vec::new()).unwrap_err();
        let ChartError::Chart(e) = e else {
            panic!("{e}")
        };
        assert!(e.to_string().contains("outside the supported range"));
    }

    #[test]
    fn a_chart_that_cannot_be_made_says_why() {
        for (birth, why) in [
            ("1990-13-45T25:00:00+09:00", "month 13 is not 01-12"),
            ("1850-01-01T10:00:00+09:00", "outside the supported range"),
            ("1990-05-15", "missing time"),
            ("1990-02-30T10:00:00+09:00", "1990-02 has 28 days"),
            ("1990-02-10T25:00:00+09:00", "25:00:00 is not a clock time"),
        ] {
            let a = args(&["--birth", birth, "--gender", "M"]);
            let e = run_chart(&a, io::empty(), Vec::new())
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("cannot chart: "), "{e}");
            assert!(e.contains(why), "{birth}: {e}");
            if birth.len() > 10 && !why.starts_with("outside") {
                assert!(e.contains("e.g. 1990-05-15T14:30:00+09:00"), "{e}");
            }
        }
    }

    #[test]
    fn sinsal_alternatives_reach_the_options_and_the_document() {
        let birth = ["--birth", "2024-02-04T17:28:00+09:00", "--gender", "M"];
        let plain = args(&birth);
        assert!(plain.options().unwrap().stars.is_default());
        let mut out = Vec::new();
        run_chart(&plain, io::empty(), &mut out).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(doc["options"].get("stars").is_none());
        let mut flags = birth.to_vec();
        flags.extend(["--yangin", "all", "--goegang", "four", "--gwimun", "wonjin"]);
        let alt = args(&flags);
        let stars = alt.options().unwrap().stars;
        assert!(stars.yangin_all_stems && stars.goegang_four && stars.gwimun_as_wonjin);
        assert!(!stars.hongyeom_variant);
        let mut out = Vec::new();
        run_chart(&alt, io::empty(), &mut out).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            doc["options"]["stars"],
            "yangin=all,goegang=four,gwimun=wonjin"
        );
        let mut bad = vec!["chart"];
        bad.extend(birth);
        bad.extend(["--yangin", "some"]);
        assert!(Cli::try_parse_from(bad).is_err());
    }

    #[test]
    fn luck_year_prints_the_year_and_its_months() {
        let a = args(&[
            "--birth",
            "2024-02-04T17:28:00+09:00",
            "--gender",
            "F",
            "--luck-year",
            "2027",
        ]);
        let mut out = Vec::new();
        run_chart(&a, io::empty(), &mut out).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(doc["year"], 2027);
        assert_eq!(doc["ganji"], "정미");
        assert_eq!(doc["ten_gods"]["stem"], "정인");
        let months = doc["months"].as_array().unwrap();
        assert_eq!(months.len(), 12);
        assert_eq!(months[0]["ganji"], "임인");
        assert_eq!(months[0]["term"], "입춘");
        assert!(months[0]["starts"]
            .as_str()
            .unwrap()
            .starts_with("2027-02-04T"));
        assert!(months[0]["starts"].as_str().unwrap().ends_with("+09:00"));
        assert_eq!(months[11]["term"], "소한");
        let groups: Vec<u64> = doc["interactions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["group"].as_u64().unwrap())
            .collect();
        assert!(groups.contains(&806), "{groups:?}");
        let out_of_range = args(&[
            "--birth",
            "2024-02-04T17:28:00+09:00",
            "--gender",
            "F",
            "--luck-year",
            "2300",
        ]);
        let e = run_chart(&out_of_range, io::empty(), Vec::new()).unwrap_err();
        assert!(e.to_string().contains("2300 is outside"), "{e}");
    }

    #[test]
    fn flags_parse() {
        let a = args(&[
            "--jsonl",
            "--zone",
            "+08:30",
            "--day-boundary",
            "split-jasi",
            "--solar-time",
            "true",
            "--longitude",
            "-73.5",
        ]);
        let o = a.options().unwrap();
        assert_eq!(o.zone, Zone::Fixed(30_600));
        assert_eq!(o.day_boundary, DayBoundary::SplitJasi);
        assert_eq!(o.solar_time, SolarTime::True);
        assert_eq!(o.longitude, -73.5);
        let mut argv = vec!["chart", "--jsonl", "--zone", "Mars/Olympus"];
        assert!(Cli::try_parse_from(argv.clone()).is_err());
        argv.truncate(2);
        argv.extend(["--day-boundary", "noon"]);
        assert!(Cli::try_parse_from(argv).is_err());
        assert!(Cli::try_parse_from(["chart"]).is_err());
    }

    #[test]
    fn jsonl_lines_in_order_with_errors_inline() {
        let input = concat!(
            "{\"birth\": \"2024-02-04T17:28:00+09:00\", \"gender\": \"M\"}\n",
            "\n",
            "not json\n",
            "{\"lunar\": {\"year\": 2020, \"month\": 4, \"day\": 15, \"leap\": true}, \"time\": \"14:30\", \"gender\": \"F\"}\r\n",
            "{\"lunar\": {\"year\": 2021, \"month\": 4, \"day\": 1, \"leap\": true}, \"time\": \"14:30\", \"gender\": \"F\"}\n",
            "{\"date\": \"1990-05-12\", \"time\": \"14:30\", \"gender\": \"F\", \"name\": \"x\"}\n",
            "{\"birth\": \"1850-01-01T00:00:00Z\", \"gender\": \"M\"}\n",
            "{\"birth\": \"2024-02-04T17:28:00+09:00\"}"
        );
        let (lines, summary) = run_jsonl(input);
        assert_eq!(
            summary,
            ChartSummary {
                charts: 3,
                errors: 4
            }
        );
        assert_eq!(lines.len(), 7);
        assert_eq!(lines[0]["ganji"][1], "병인");
        assert!(lines[1]["error"].as_str().unwrap().contains("input line"));
        assert_eq!(lines[2]["solar_date"], "2020-06-06");
        assert_eq!(lines[2]["lunar"]["leap"], true);
        assert_eq!(lines[3]["error"], "lunar 2021-04 has no leap month");
        assert_eq!(lines[4]["solar_date"], "1990-05-12");
        assert!(lines[5]["error"].as_str().unwrap().contains("1850-01-01"));
        assert!(lines[6]["error"].as_str().unwrap().contains("gender"));
    }

    #[test]
    fn overlong_lines_are_rejected_and_the_stream_goes_on() {
        let mut input = "x".repeat(MAX_LINE + 10);
        input.push('\n');
        input.push_str("{\"birth\": \"2000-01-07T12:00:00+09:00\", \"gender\": \"M\"}\n");
        let (lines, summary) = run_jsonl(&input);
        assert_eq!(
            summary,
            ChartSummary {
                charts: 1,
                errors: 1
            }
        );
        assert!(lines[0]["error"].as_str().unwrap().contains("longer"));
        assert_eq!(lines[1]["ganji"][2], "갑자");
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_give_one_line_each() {
        let samples: [&[u8]; 12] = [
            b"{}",
            b"[]",
            b"\xff\xfe",
            b"{\"birth\": 5, \"gender\": \"M\"}",
            b"{\"birth\": \"9999-12-31T23:59:59+14:00\", \"gender\": \"M\"}",
            b"{\"birth\": \"0000-01-01T00:00:00-23:59\", \"gender\": \"F\"}",
            b"{\"lunar\": {\"year\": 99999999999, \"month\": 1, \"day\": 1}, \"time\": \"00:00\", \"gender\": \"M\"}",
            b"{\"lunar\": {\"year\": 2020, \"month\": -1, \"day\": 1}, \"time\": \"00:00\", \"gender\": \"M\"}",
            b"{\"lunar\": {\"year\": 2020, \"month\": 1, \"day\": 1}, \"time\": \"25:00\", \"gender\": \"M\"}",
            b"{\"date\": \"2020-02-30\", \"time\": \"10:00\", \"gender\": \"M\"}",
            b"{\"date\": \"2020-02-01\", \"time\": \"10:00\", \"gender\": \"X\"}",
            b"{\"birth\": \"2020-02-01T10:00:00Z\", \"lunar\": {\"year\": 2020, \"month\": 1, \"day\": 1}, \"gender\": \"M\"}",
        ];
        let mut input = Vec::new();
        for s in samples {
            input.extend_from_slice(s);
            input.push(b'\n');
        }
        let mut out = Vec::new();
        let summary = run_chart(&args(&["--jsonl"]), input.as_slice(), &mut out).unwrap();
        assert_eq!(
            summary,
            ChartSummary {
                charts: 0,
                errors: 12
            }
        );
        for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let doc: serde_json::Value = serde_json::from_slice(line).unwrap();
            assert!(doc["error"].is_string(), "{doc}");
        }
    }

    #[test]
    fn lines_split_across_reads() {
        let line = "{\"birth\": \"2000-01-07T12:00:00+09:00\", \"gender\": \"M\"}\n";
        let input = line.repeat(500);
        let reader = io::BufReader::with_capacity(7, input.as_bytes());
        let mut out = Vec::new();
        let s = run_chart(&args(&["--jsonl"]), reader, &mut out).unwrap();
        assert_eq!(s.charts, 500);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 500);
    }
}
