//! JUnit XML for CI: one test suite per scenario file, one test case per step.

use std::fmt::Write;

use crate::scenario::{ScenarioReport, StepReport};

/// The JUnit XML report of scenario runs.
pub fn junit_xml(reports: &[ScenarioReport]) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let failures = reports.iter().filter(|r| !r.passed()).count();
    let total: f64 = reports.iter().map(|r| r.elapsed.as_secs_f64()).sum();
    let _ = writeln!(
        xml,
        "<testsuites name=\"cloudrun-emulator scenarios\" tests=\"{}\" failures=\"{failures}\" time=\"{total:.3}\">",
        reports.len()
    );
    for report in reports {
        let cases: Vec<&StepReport> = std::iter::once(&report.setup)
            .chain(&report.steps)
            .collect();
        let failed = cases.iter().filter(|c| c.failure.is_some()).count();
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{}\" file=\"{}\" tests=\"{}\" failures=\"{failed}\" time=\"{:.3}\">",
            escape(&report.name),
            escape(&report.file.display().to_string()),
            cases.len(),
            report.elapsed.as_secs_f64()
        );
        for case in cases {
            let _ = write!(
                xml,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                escape(&report.name),
                escape(&case.name),
                case.elapsed.as_secs_f64()
            );
            match &case.failure {
                None => xml.push_str("/>\n"),
                Some(failure) => {
                    let _ = writeln!(
                        xml,
                        ">\n      <failure message=\"{}\">{}</failure>\n      <system-out>{}</system-out>\n    </testcase>",
                        escape(failure.lines().next().unwrap_or_default()),
                        escape(failure),
                        escape(&report.logs)
                    );
                }
            }
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

/// Escapes text for an XML attribute or element, dropping characters XML 1.0 cannot hold.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_xml() {
        assert_eq!(escape("a<b & \"c\"\u{1b}"), "a&lt;b &amp; &quot;c&quot;");
    }
}
