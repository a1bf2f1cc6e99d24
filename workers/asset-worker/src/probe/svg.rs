//! SVG dimensions from the document: the `width`/`height` attributes when they are absolute
//! lengths, otherwise the `viewBox`. Nothing is rendered.

use serde::Serialize;

use super::ProbeError;

/// What the root `<svg>` element says about its size.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SvgSize {
    /// Width in CSS pixels, rounded up; absent when neither attribute nor viewBox gives one.
    pub width: Option<u32>,
    /// See `width`.
    pub height: Option<u32>,
    /// `[min-x, min-y, width, height]` of the viewBox, when present and valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view_box: Option<[f64; 4]>,
}

/// Most XML nodes a document may have: bounds the work on hostile input.
const NODES_LIMIT: u32 = 1_000_000;

/// Parses the document and reads the root element's size.
pub fn size(bytes: &[u8]) -> Result<SvgSize, ProbeError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ProbeError::Corrupt(format!("SVG is not UTF-8: {e}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        nodes_limit: NODES_LIMIT,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, options).map_err(|e| match e {
        roxmltree::Error::UnexpectedEndOfStream | roxmltree::Error::UnclosedRootNode => {
            ProbeError::Truncated(format!("SVG ends early: {e}"))
        }
        roxmltree::Error::NodesLimitReached | roxmltree::Error::EntityReferenceLoop(_) => {
            ProbeError::TooLarge(format!("SVG: {e}"))
        }
        _ => ProbeError::Corrupt(format!("SVG: {e}")),
    })?;
    let root = doc.root_element();
    if root.tag_name().name() != "svg" {
        return Err(ProbeError::Corrupt(format!(
            "root element is <{}>, not <svg>",
            root.tag_name().name()
        )));
    }
    let view_box = root.attribute("viewBox").and_then(parse_view_box);
    let width = root
        .attribute("width")
        .and_then(length)
        .or(view_box.map(|v| v[2]));
    let height = root
        .attribute("height")
        .and_then(length)
        .or(view_box.map(|v| v[3]));
    Ok(SvgSize {
        width: width.and_then(pixels),
        height: height.and_then(pixels),
        view_box,
    })
}

fn parse_view_box(text: &str) -> Option<[f64; 4]> {
    let numbers: Vec<f64> = text
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let [x, y, w, h] = <[f64; 4]>::try_from(numbers).ok()?;
    (w > 0.0 && h > 0.0 && [x, y, w, h].iter().all(|v| v.is_finite())).then_some([x, y, w, h])
}

/// An absolute length in CSS pixels (`120`, `120px`, `2in`…); percentages and font-relative
/// units depend on a viewport and give `None`.
fn length(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let scale = match unit.trim() {
        "" | "px" => 1.0,
        "in" => 96.0,
        "cm" => 96.0 / 2.54,
        "mm" => 96.0 / 25.4,
        "pt" => 96.0 / 72.0,
        "pc" => 16.0,
        _ => return None,
    };
    let px = value * scale;
    (px.is_finite() && px > 0.0).then_some(px)
}

fn pixels(value: f64) -> Option<u32> {
    (value > 0.0 && value < f64::from(u32::MAX)).then(|| value.ceil() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_box_and_attributes() {
        let svg =
            br#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 640.5 480"><rect/></svg>"#;
        let size = size(svg).unwrap();
        assert_eq!((size.width, size.height), (Some(641), Some(480)));
        assert_eq!(size.view_box, Some([0.0, 0.0, 640.5, 480.0]));

        let svg = br#"<svg width="2in" height="100%" viewBox="0,0,10,20"/>"#;
        let size = super::size(svg).unwrap();
        assert_eq!((size.width, size.height), (Some(192), Some(20)));

        let svg = br#"<svg/>"#;
        assert_eq!(super::size(svg).unwrap().width, None);
    }

    #[test]
    fn broken_documents() {
        assert!(matches!(
            size(b"<svg viewBox='0 0 1 1'><g>"),
            Err(ProbeError::Truncated(_))
        ));
        assert!(matches!(size(b"<html/>"), Err(ProbeError::Corrupt(_))));
        assert!(matches!(
            size(b"\xff\xfe<svg/>"),
            Err(ProbeError::Corrupt(_))
        ));
        let bomb = br#"<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "&b;"><!ENTITY b "&a;">]><svg>&a;</svg>"#;
        assert!(size(bomb).is_err());
    }
}
