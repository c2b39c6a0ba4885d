//! The autodisconnect policy value.
//!
//! Windows: `NET CONFIG SERVER /AUTODISCONNECT:<minutes>` (KB 138365, KB 102967),
//! MS-SRVS 2.2.4.41 `SERVER_INFO_102.sv102_disc` (minutes, -1 = never).
//!
//! Accepted forms:
//!
//! | input    | meaning                                                        |
//! |----------|----------------------------------------------------------------|
//! | `15`     | a bare integer is minutes, as in `NET CONFIG SERVER` (0..=65535) |
//! | `-1`     | never disconnect idle sessions                                 |
//! | `0`      | reap a session at the first tick once it is idle (see below)   |
//! | `250ms`  | milliseconds                                                   |
//! | `30s`    | seconds                                                        |
//! | `5m`     | minutes                                                        |
//! | `2h`     | hours                                                          |
//!
//! Every form is capped at 65535 minutes. The default is 15 minutes.
//!
//! **Zero.** Windows documents 0 as "disconnect as soon as possible". We take it
//! literally: with a timeout of 0 a session's deadline equals its last activity,
//! so it is reaped by the first timer poll at or after the tick that follows its
//! last request (never while a request is being handled, since the runtime
//! polls timers between requests, and never while it holds open handles).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The largest autodisconnect, in minutes (`NET CONFIG SERVER` accepts 0..=65535).
pub const MAX_MINUTES: u64 = 65_535;

const MAX_MS: u64 = MAX_MINUTES * 60_000;

/// How long a session may stay idle before the server logs it off.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum AutoDisconnect {
    /// Idle sessions are never reaped (`-1`).
    Never,
    /// Idle sessions are reaped once idle for this many milliseconds
    /// (0..=65535 minutes).
    AfterMillis(u64),
}

impl AutoDisconnect {
    /// The Windows default: 15 minutes.
    pub const DEFAULT: AutoDisconnect = AutoDisconnect::AfterMillis(15 * 60_000);

    /// A timeout of `minutes` (at most [`MAX_MINUTES`]).
    pub fn minutes(minutes: u64) -> Result<Self, ParseAutoDisconnectError> {
        Self::from_millis(minutes.saturating_mul(60_000))
    }

    /// A timeout of `ms` milliseconds (at most 65535 minutes).
    pub fn from_millis(ms: u64) -> Result<Self, ParseAutoDisconnectError> {
        if ms > MAX_MS {
            Err(ParseAutoDisconnectError::new("", ErrorKind::TooLarge))
        } else {
            Ok(AutoDisconnect::AfterMillis(ms))
        }
    }

    /// A timeout of `d`, rounded up to a whole millisecond (never early).
    pub fn after(d: Duration) -> Result<Self, ParseAutoDisconnectError> {
        let ms = d.as_nanos().div_ceil(1_000_000);
        Self::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
    }

    /// The timeout, or `None` for [`AutoDisconnect::Never`].
    pub fn as_duration(self) -> Option<Duration> {
        match self {
            AutoDisconnect::Never => None,
            AutoDisconnect::AfterMillis(ms) => Some(Duration::from_millis(ms)),
        }
    }

    /// The value in whole minutes as MS-SRVS `sv102_disc` carries it: -1 for
    /// never, otherwise minutes rounded up (so 30s reads as 1).
    pub fn as_srvs_minutes(self) -> i32 {
        match self {
            AutoDisconnect::Never => -1,
            // MAX_MS / 60_000 == 65535 fits in i32.
            AutoDisconnect::AfterMillis(ms) => ms.div_ceil(60_000) as i32,
        }
    }
}

impl Default for AutoDisconnect {
    fn default() -> Self {
        AutoDisconnect::DEFAULT
    }
}

impl fmt::Display for AutoDisconnect {
    /// The canonical form: `-1`, bare minutes when whole, else `Ns` or `Nms`.
    /// Parsing the output gives back the same value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AutoDisconnect::Never => f.write_str("-1"),
            AutoDisconnect::AfterMillis(ms) if ms % 60_000 == 0 => write!(f, "{}", ms / 60_000),
            AutoDisconnect::AfterMillis(ms) if ms % 1_000 == 0 => write!(f, "{}s", ms / 1_000),
            AutoDisconnect::AfterMillis(ms) => write!(f, "{ms}ms"),
        }
    }
}

/// Why a string is not an autodisconnect value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Empty input.
    Empty,
    /// Not a number, or a unit other than ms/s/m/h.
    Invalid,
    /// More than 65535 minutes.
    TooLarge,
}

/// The error for an unparsable autodisconnect value; its message lists the
/// accepted forms.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ParseAutoDisconnectError {
    input: String,
    kind: ErrorKind,
}

impl ParseAutoDisconnectError {
    fn new(input: &str, kind: ErrorKind) -> Self {
        // Keep the echoed input bounded.
        let input = input.chars().take(40).collect();
        ParseAutoDisconnectError { input, kind }
    }

    /// Why parsing failed.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for ParseAutoDisconnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.kind {
            ErrorKind::Empty => "empty value",
            ErrorKind::Invalid => "not a valid value",
            ErrorKind::TooLarge => "more than 65535 minutes",
        };
        write!(
            f,
            "invalid autodisconnect {:?}: {why}; accepted: minutes as an integer 0..=65535 \
             (e.g. 15), -1 for never, or a number with a unit: 250ms, 30s, 5m, 2h \
             (at most 65535 minutes)",
            self.input
        )
    }
}

impl std::error::Error for ParseAutoDisconnectError {}

impl FromStr for AutoDisconnect {
    type Err = ParseAutoDisconnectError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.is_empty() {
            return Err(ParseAutoDisconnectError::new(s, ErrorKind::Empty));
        }
        if t == "-1" {
            return Ok(AutoDisconnect::Never);
        }
        let digits = t.bytes().take_while(u8::is_ascii_digit).count();
        let (num, unit) = t.split_at(digits);
        if num.is_empty() || num.len() > 20 {
            return Err(ParseAutoDisconnectError::new(s, ErrorKind::Invalid));
        }
        let n: u64 = num
            .parse()
            .map_err(|_| ParseAutoDisconnectError::new(s, ErrorKind::TooLarge))?;
        let per_unit_ms: u64 = match unit.trim_start().to_ascii_lowercase().as_str() {
            "" | "m" | "min" => 60_000,
            "ms" => 1,
            "s" => 1_000,
            "h" => 3_600_000,
            _ => return Err(ParseAutoDisconnectError::new(s, ErrorKind::Invalid)),
        };
        let ms = n.saturating_mul(per_unit_ms);
        if ms > MAX_MS {
            return Err(ParseAutoDisconnectError::new(s, ErrorKind::TooLarge));
        }
        Ok(AutoDisconnect::AfterMillis(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Result<AutoDisconnect, ErrorKind> {
        s.parse::<AutoDisconnect>().map_err(|e| e.kind())
    }

    #[test]
    fn parses_every_documented_form() {
        assert_eq!(p("15"), Ok(AutoDisconnect::AfterMillis(900_000)));
        assert_eq!(p("-1"), Ok(AutoDisconnect::Never));
        assert_eq!(p("0"), Ok(AutoDisconnect::AfterMillis(0)));
        assert_eq!(p("250ms"), Ok(AutoDisconnect::AfterMillis(250)));
        assert_eq!(p("30s"), Ok(AutoDisconnect::AfterMillis(30_000)));
        assert_eq!(p("5m"), Ok(AutoDisconnect::AfterMillis(300_000)));
        assert_eq!(p("2h"), Ok(AutoDisconnect::AfterMillis(7_200_000)));
        assert_eq!(p(" 65535 "), Ok(AutoDisconnect::AfterMillis(MAX_MS)));
        assert_eq!(p("30 S"), Ok(AutoDisconnect::AfterMillis(30_000)));
    }

    #[test]
    fn rejects_bad_values() {
        assert_eq!(p(""), Err(ErrorKind::Empty));
        assert_eq!(p("   "), Err(ErrorKind::Empty));
        assert_eq!(p("65536"), Err(ErrorKind::TooLarge));
        assert_eq!(p("1093h"), Err(ErrorKind::TooLarge));
        assert_eq!(p("99999999999999999999"), Err(ErrorKind::TooLarge));
        assert_eq!(p("999999999999999999999999"), Err(ErrorKind::Invalid));
        assert_eq!(p("-2"), Err(ErrorKind::Invalid));
        assert_eq!(p("5d"), Err(ErrorKind::Invalid));
        assert_eq!(p("ms"), Err(ErrorKind::Invalid));
        assert_eq!(p("1.5s"), Err(ErrorKind::Invalid));
    }

    #[test]
    fn error_message_lists_forms() {
        let e = "abc".parse::<AutoDisconnect>().unwrap_err().to_string();
        for form in ["-1", "250ms", "30s", "5m", "2h", "65535"] {
            assert!(e.contains(form), "{e}");
        }
    }

    #[test]
    fn display_is_canonical() {
        assert_eq!(AutoDisconnect::Never.to_string(), "-1");
        assert_eq!(p("2h").unwrap().to_string(), "120");
        assert_eq!(p("90s").unwrap().to_string(), "90s");
        assert_eq!(p("1500ms").unwrap().to_string(), "1500ms");
        assert_eq!(p("0").unwrap().to_string(), "0");
        assert_eq!(AutoDisconnect::default().to_string(), "15");
    }

    #[test]
    fn durations_and_srvs_minutes() {
        assert_eq!(AutoDisconnect::Never.as_duration(), None);
        assert_eq!(
            p("30s").unwrap().as_duration(),
            Some(Duration::from_secs(30))
        );
        assert_eq!(p("30s").unwrap().as_srvs_minutes(), 1);
        assert_eq!(AutoDisconnect::Never.as_srvs_minutes(), -1);
        assert_eq!(
            AutoDisconnect::after(Duration::from_micros(1500)).unwrap(),
            AutoDisconnect::AfterMillis(2)
        );
        assert!(AutoDisconnect::minutes(65_536).is_err());
    }

    proptest! {
        #[test]
        fn display_round_trips(ms in 0..=MAX_MS) {
            let v = AutoDisconnect::from_millis(ms).unwrap();
            prop_assert_eq!(v.to_string().parse::<AutoDisconnect>().unwrap(), v);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,30}") {
            let _ = s.parse::<AutoDisconnect>();
        }
    }
}
