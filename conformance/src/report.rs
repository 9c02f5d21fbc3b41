//! A run's report: a table for people, JSON for tools, JUnit XML for CI systems.

use std::fmt::Write as _;

use crate::{Finding, Level};

fn level(level: Level) -> &'static str {
    match level {
        Level::Must => "MUST",
        Level::Should => "SHOULD",
    }
}

/// The table: one line per check, then the totals.
pub fn table(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        let result = match &f.outcome {
            Ok(()) => "pass".to_owned(),
            Err(why) => format!("FAIL: {why}"),
        };
        let _ = writeln!(
            out,
            "{:<7} {:<6} {:<6} {}  [{result}]",
            f.id,
            f.section,
            level(f.level),
            f.title
        );
    }
    let failed = |l: Level| findings.iter().filter(|f| f.level == l && f.outcome.is_err()).count();
    let _ = writeln!(
        out,
        "\n{} checks: {} passed, {} MUST failed, {} SHOULD failed",
        findings.len(),
        findings.iter().filter(|f| f.outcome.is_ok()).count(),
        failed(Level::Must),
        failed(Level::Should)
    );
    out
}

/// One JSON object per check, in an array.
pub fn json(findings: &[Finding]) -> String {
    let checks: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| {
            serde_json::json!({
                "id": f.id,
                "section": f.section,
                "level": level(f.level),
                "title": f.title,
                "passed": f.outcome.is_ok(),
                "error": f.outcome.as_ref().err(),
                "seconds": f.took.as_secs_f64(),
            })
        })
        .collect();
    serde_json::to_string_pretty(&checks).unwrap_or_default()
}

fn escape(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            other => other.to_string(),
        })
        .collect()
}

/// JUnit XML: one testcase per check; a failed MUST is a failure, a failed SHOULD a skipped
/// case with the reason (it does not fail the build).
pub fn junit(findings: &[Finding]) -> String {
    let failures = findings.iter().filter(|f| f.level == Level::Must && f.outcome.is_err()).count();
    let seconds: f64 = findings.iter().map(|f| f.took.as_secs_f64()).sum();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"banter-conformance\" tests=\"{}\" failures=\"{failures}\" time=\"{seconds:.3}\">\n",
        findings.len()
    );
    for f in findings {
        let name = escape(&format!("{} {} {} {}", f.id, f.section, level(f.level), f.title));
        let _ = write!(
            out,
            "  <testcase classname=\"banter-conformance\" name=\"{name}\" time=\"{:.3}\"",
            f.took.as_secs_f64()
        );
        match (&f.outcome, f.level) {
            (Ok(()), _) => out.push_str("/>\n"),
            (Err(why), Level::Must) => {
                let _ =
                    write!(out, ">\n    <failure message=\"{}\"/>\n  </testcase>\n", escape(why));
            }
            (Err(why), Level::Should) => {
                let _ = write!(
                    out,
                    ">\n    <skipped message=\"SHOULD not met: {}\"/>\n  </testcase>\n",
                    escape(why)
                );
            }
        }
    }
    out.push_str("</testsuite>\n");
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn finding(id: &'static str, level: Level, outcome: crate::Outcome) -> Finding {
        Finding {
            id,
            section: "§1",
            level,
            title: "a <title> & more",
            outcome,
            took: Duration::ZERO,
        }
    }

    #[test]
    fn reports_count_failed_musts_apart_from_shoulds_and_escape_xml() {
        let findings = [
            finding("1-1", Level::Must, Ok(())),
            finding("1-2", Level::Must, Err("got \"x\" <y>".into())),
            finding("1-3", Level::Should, Err("slow".into())),
        ];
        assert!(table(&findings).contains("3 checks: 1 passed, 1 MUST failed, 1 SHOULD failed"));
        let xml = junit(&findings);
        assert!(xml.contains("tests=\"3\" failures=\"1\""), "{xml}");
        assert!(xml.contains("<failure message=\"got &quot;x&quot; &lt;y&gt;\"/>"), "{xml}");
        assert!(xml.contains("<skipped message=\"SHOULD not met: slow\"/>"), "{xml}");
        assert!(xml.contains("a &lt;title&gt; &amp; more"), "{xml}");
        let json: serde_json::Value = serde_json::from_str(&json(&findings)).unwrap();
        assert_eq!(json[1]["passed"], false);
        assert_eq!(json[1]["level"], "MUST");
        assert_eq!(json[2]["error"], "slow");
        assert!(!crate::passed(&findings));
        assert!(crate::passed(&findings[..1]));
        assert!(
            crate::passed(&[findings[0].clone(), findings[2].clone()]),
            "a SHOULD does not fail"
        );
    }
}
