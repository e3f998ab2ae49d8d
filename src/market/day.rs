//! Trading days as the store carries them: whole days since 1970-01-01, so no date crate is
//! needed (PostgreSQL's `date - date` gives exactly this integer).

use std::fmt;

/// A calendar day, as days since 1970-01-01 (negative before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(into = "String")]
pub struct TradingDay(pub i32);

/// First day of `frontier seed`'s calendar: Monday 2000-01-03. A fixed start (rather than one
/// counted back from today) keeps re-seeding idempotent on any day it is run.
pub const SYNTHETIC_FIRST_DAY: TradingDay = TradingDay(10_959);

impl TradingDay {
    /// The day for a proleptic Gregorian `year`-`month`-`day`; `None` for a date that does not
    /// exist (month 13, February 30).
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Self> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        // Howard Hinnant's days_from_civil: years start in March so the leap day comes last.
        let year = i64::from(if month <= 2 { year - 1 } else { year });
        let era = year.div_euclid(400);
        let year_of_era = year - era * 400;
        let month = i64::from(month);
        let month_from_march = if month > 2 { month - 3 } else { month + 9 };
        let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        i32::try_from(era * 146_097 + day_of_era - 719_468).ok().map(TradingDay)
    }

    /// Year, month (1-12) and day of month (1-31).
    pub fn ymd(self) -> (i32, u32, u32) {
        // Hinnant's civil_from_days, the inverse of `from_ymd`.
        let days = i64::from(self.0) + 719_468;
        let era = days.div_euclid(146_097);
        let day_of_era = days - era * 146_097;
        let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let month_from_march = (5 * day_of_year + 2) / 153;
        let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
        let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 } as u32;
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        (year as i32, month, day)
    }

    /// Day of the week, 0 = Monday ... 6 = Sunday.
    pub fn weekday(self) -> u32 {
        // 1970-01-01 was a Thursday (3).
        (i64::from(self.0) + 3).rem_euclid(7) as u32
    }

    /// Whether markets trade on this day in the synthetic calendar (Monday to Friday).
    pub fn is_weekday(self) -> bool {
        self.weekday() < 5
    }
}

/// The first `count` weekdays from [`SYNTHETIC_FIRST_DAY`] on: the days `frontier seed` writes.
/// Asking for more days extends the list without changing its start, as the synthetic series do.
pub fn synthetic_trading_days(count: usize) -> Vec<TradingDay> {
    let mut days = Vec::with_capacity(count);
    let mut day = SYNTHETIC_FIRST_DAY;
    while days.len() < count {
        if day.is_weekday() {
            days.push(day);
        }
        day = TradingDay(day.0 + 1);
    }
    days
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl fmt::Display for TradingDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (year, month, day) = self.ymd();
        write!(f, "{year:04}-{month:02}-{day:02}")
    }
}

impl From<TradingDay> for String {
    fn from(day: TradingDay) -> Self {
        day.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_known_dates_convert_both_ways() {
        assert_eq!(TradingDay::from_ymd(1970, 1, 1), Some(TradingDay(0)));
        assert_eq!(TradingDay::from_ymd(2000, 1, 3), Some(SYNTHETIC_FIRST_DAY));
        assert_eq!(TradingDay::from_ymd(2000, 2, 29).map(|d| d.to_string()).as_deref(), Some("2000-02-29"));
        assert_eq!(TradingDay(-1).to_string(), "1969-12-31");
        for days in [-800_000, -1, 0, 59, 60, 10_959, 20_000, 2_000_000] {
            let (y, m, d) = TradingDay(days).ymd();
            assert_eq!(TradingDay::from_ymd(y, m, d), Some(TradingDay(days)), "{days}");
        }
    }

    #[test]
    fn impossible_dates_are_refused() {
        assert_eq!(TradingDay::from_ymd(2001, 2, 29), None);
        assert_eq!(TradingDay::from_ymd(2000, 13, 1), None);
        assert_eq!(TradingDay::from_ymd(2000, 4, 31), None);
    }

    #[test]
    fn synthetic_calendar_starts_on_a_monday_and_skips_weekends() {
        assert_eq!(SYNTHETIC_FIRST_DAY.weekday(), 0);
        let days = synthetic_trading_days(7);
        let shown: Vec<String> = days.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            shown,
            ["2000-01-03", "2000-01-04", "2000-01-05", "2000-01-06", "2000-01-07", "2000-01-10", "2000-01-11"]
        );
    }
}
