//! The timeline as one self-contained HTML page: the timeline embedded as JSON, drawn by a
//! small inline script into SVG — no network, no external script, font or image, so the
//! file can be mailed, attached to an issue, or opened years later as it is.

use super::Timeline;

/// The page around the data: inline CSS and script (`page.html`, beside this file).
const PAGE: &str = include_str!("page.html");

/// Where the data goes in [`PAGE`].
const SLOT: &str = "__TIMELINE_JSON__";

/// Where the title goes.
const TITLE_SLOT: &str = "__TIMELINE_TITLE__";

/// The page showing `timeline`.
pub fn render(timeline: &Timeline) -> String {
    // Inside a <script> element only `</script` ends it: escaping every `<` (as JSON's
    // \u003c, which only occurs inside strings) rules that out whatever the data holds.
    let json = timeline.to_json().replace('<', "\\u003c");
    // Each slot filled where the page holds it, never inside what another slot received.
    let (head, rest) = PAGE
        .split_once(TITLE_SLOT)
        .expect("the page has a title slot");
    let (middle, tail) = rest.split_once(SLOT).expect("the page has a data slot");
    [head, &escape(&timeline.title), middle, &json, tail].concat()
}

/// The JSON a page produced by [`render`] embeds, parsed back (for tests and tools).
pub fn embedded(page: &str) -> Result<Timeline, String> {
    let start_tag = r#"<script type="application/json" id="timeline-data">"#;
    let start = page
        .find(start_tag)
        .ok_or("the page embeds no timeline data")?
        + start_tag.len();
    let end = page[start..]
        .find("</script>")
        .ok_or("the timeline data is not closed")?;
    serde_json::from_str(&page[start..start + end]).map_err(|e| format!("bad timeline data: {e}"))
}

/// Text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::Lane;

    #[test]
    fn the_page_embeds_the_timeline_whatever_its_text_holds() {
        let mut t = Timeline::new();
        t.title = "seed <1>".into();
        t.begin_step(0, "Put </script><b>".into());
        t.mark(
            Lane::Faults,
            "fault-fired",
            "x</script>",
            vec!["a & b".into()],
        );
        let page = render(&t);
        assert_eq!(page.matches("</script>").count(), 2, "data and script only");
        assert!(page.contains("seed &lt;1&gt;"));
        assert_eq!(embedded(&page), Ok(t));
    }
}
