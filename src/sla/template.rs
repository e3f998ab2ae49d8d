//! Alert summaries: `{placeholder}` templates, parsed once at start so a typo in a placeholder
//! is a configuration error rather than a literal `{valeu}` in a page at 3 a.m.

use std::fmt::Write as _;

/// A parsed summary template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SummaryTemplate {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Text(String),
    Field(Placeholder),
}

/// What a template can refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placeholder {
    Name,
    Service,
    Kind,
    Sli,
    Value,
    Comparison,
    Threshold,
    Window,
    ShortWindow,
    Objective,
    Severity,
    Subject,
}

impl Placeholder {
    fn parse(word: &str) -> Option<Placeholder> {
        Some(match word {
            "name" => Placeholder::Name,
            "service" => Placeholder::Service,
            "kind" => Placeholder::Kind,
            "sli" => Placeholder::Sli,
            "value" => Placeholder::Value,
            "comparison" => Placeholder::Comparison,
            "threshold" => Placeholder::Threshold,
            "window" => Placeholder::Window,
            "short_window" => Placeholder::ShortWindow,
            "objective" => Placeholder::Objective,
            "severity" => Placeholder::Severity,
            "subject" => Placeholder::Subject,
            _ => return None,
        })
    }

    /// Placeholders that only SLO summaries can fill.
    fn slo_only(self) -> bool {
        matches!(self, Placeholder::ShortWindow | Placeholder::Objective)
    }
}

/// Everything a summary may show, already formatted with units.
pub(crate) struct SummaryValues<'a> {
    pub name: &'a str,
    pub service: &'a str,
    pub kind: &'a str,
    /// What the alert is about, in words: `serve portfolio.risk`, `group frontier.serve`.
    pub subject: &'a str,
    pub sli: &'a str,
    pub value: String,
    pub comparison: &'a str,
    pub threshold: String,
    pub window: &'a str,
    pub short_window: &'a str,
    pub objective: String,
    pub severity: &'a str,
}

impl SummaryTemplate {
    /// Parses `text`; `for_slo` allows the SLO-only placeholders. The error says what is wrong.
    pub(crate) fn parse(text: &str, for_slo: bool) -> Result<SummaryTemplate, String> {
        let mut segments = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                segments.push(Segment::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or_else(|| format!("unclosed `{{` in {text:?}"))?;
            let word = &after[..close];
            let placeholder =
                Placeholder::parse(word).ok_or_else(|| format!("unknown placeholder `{{{word}}}` in {text:?}"))?;
            if placeholder.slo_only() && !for_slo {
                return Err(format!("placeholder `{{{word}}}` is only available in SLO summaries"));
            }
            segments.push(Segment::Field(placeholder));
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("unmatched `}}` in {text:?}"));
        }
        if !rest.is_empty() {
            segments.push(Segment::Text(rest.to_string()));
        }
        Ok(SummaryTemplate { segments })
    }

    /// The summary line.
    pub(crate) fn render(&self, values: &SummaryValues<'_>) -> String {
        let mut out = String::with_capacity(96);
        for segment in &self.segments {
            let piece: &str = match segment {
                Segment::Text(text) => text,
                Segment::Field(field) => match field {
                    Placeholder::Name => values.name,
                    Placeholder::Service => values.service,
                    Placeholder::Kind => values.kind,
                    Placeholder::Sli => values.sli,
                    Placeholder::Value => &values.value,
                    Placeholder::Comparison => values.comparison,
                    Placeholder::Threshold => &values.threshold,
                    Placeholder::Window => values.window,
                    Placeholder::ShortWindow => values.short_window,
                    Placeholder::Objective => &values.objective,
                    Placeholder::Severity => values.severity,
                    Placeholder::Subject => values.subject,
                },
            };
            out.push_str(piece);
        }
        out
    }
}

/// How a value and its threshold are shown in summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Milliseconds,
    PerSecond,
    Fraction,
    BurnRate,
    /// A number of things (messages, actions).
    Count,
    /// A yes/no condition shown as 0 or 1.
    Flag,
}

impl Unit {
    /// `231.4 ms`, `1520.0/s`, `1.52%`, `14.9x`; `n/a` for a missing value.
    pub(crate) fn format(self, value: f64) -> String {
        if !value.is_finite() {
            return "n/a".into();
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = match self {
            Unit::Milliseconds => write!(out, "{value:.1} ms"),
            Unit::PerSecond => write!(out, "{value:.1}/s"),
            Unit::Fraction => write!(out, "{}%", trim_percent(value * 100.0)),
            Unit::BurnRate => write!(out, "{value:.1}x"),
            Unit::Count | Unit::Flag => write!(out, "{value:.0}"),
        };
        out
    }
}

/// Percentages with enough decimals to tell 99.9 from 99.95 without printing float noise.
fn trim_percent(percent: f64) -> String {
    let text = format!("{percent:.3}");
    let text = text.trim_end_matches('0');
    text.trim_end_matches('.').to_string()
}

/// How `value` relates to `threshold`, in words.
pub(crate) fn relation(value: f64, threshold: f64) -> &'static str {
    if !value.is_finite() {
        "vs"
    } else if value > threshold {
        "above"
    } else if value < threshold {
        "below"
    } else {
        "at"
    }
}
