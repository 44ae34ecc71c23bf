//! Turns a raw QR payload into something a person can scan: a PNG, a `data:` URL of
//! it (what the Django page embeds, as the Node server sent), or an SVG.

use std::io::Cursor;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use image::{ImageFormat, Luma};
use qrcode::QrCode;
use qrcode::render::svg;

/// The smallest side of a rendered QR, in pixels: large enough to scan from a
/// laptop screen, as the Node server's images were.
const MIN_SIDE: u32 = 300;

/// Why a payload could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum QrRenderError {
    #[error("the QR payload cannot be encoded: {0}")]
    Encode(#[from] qrcode::types::QrError),
    #[error("the QR image cannot be written: {0}")]
    Image(#[from] image::ImageError),
}

/// A PNG of the QR code for `payload`.
pub fn png(payload: &str) -> Result<Vec<u8>, QrRenderError> {
    let code = QrCode::new(payload.as_bytes())?;
    let img = code
        .render::<Luma<u8>>()
        .min_dimensions(MIN_SIDE, MIN_SIDE)
        .build();
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png)?;
    Ok(out.into_inner())
}

/// The QR code drawn with Unicode half blocks, two modules a character, light
/// modules drawn and dark ones blank: what a phone scans from a dark terminal over
/// ssh.
pub fn terminal(payload: &str) -> Result<String, QrRenderError> {
    use qrcode::render::unicode::Dense1x2;
    let code = QrCode::new(payload.as_bytes())?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// `data:image/png;base64,…` of [`png`].
pub fn png_data_url(payload: &str) -> Result<String, QrRenderError> {
    Ok(format!(
        "data:image/png;base64,{}",
        B64.encode(png(payload)?)
    ))
}

/// An SVG document of the QR code for `payload`.
pub fn svg(payload: &str) -> Result<String, QrRenderError> {
    let code = QrCode::new(payload.as_bytes())?;
    Ok(code
        .render::<svg::Color<'_>>()
        .min_dimensions(MIN_SIDE, MIN_SIDE)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_png_data_url_and_svg() {
        let payload = "2@abc,def,ghi,jkl";
        let png = png(payload).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let url = png_data_url(payload).unwrap();
        let b64 = url.strip_prefix("data:image/png;base64,").unwrap();
        assert_eq!(B64.decode(b64).unwrap(), png);
        let svg = svg(payload).unwrap();
        assert!(svg.contains("<svg"), "{svg}");
    }
}
