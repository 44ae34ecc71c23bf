// placeholder until the pairing module lands
use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;
use base64::Engine as _;
pub struct ScannedQr { pub pairing_ref: String, pub noise_pub: [u8; 32], pub identity_pub: [u8; 32], pub adv_secret: [u8; 32] }
#[derive(Debug, thiserror::Error)]
#[error("bad qr")]
pub struct PairingError;
pub fn parse_qr(code: &str) -> Result<ScannedQr, PairingError> {
    let p: Vec<&str> = code.split(',').collect();
    let k = |s: &str| -> Result<[u8; 32], PairingError> { base64::engine::general_purpose::STANDARD.decode(s).ok().and_then(|v| v.try_into().ok()).ok_or(PairingError) };
    Ok(ScannedQr { pairing_ref: p[0].to_string(), noise_pub: k(p[1])?, identity_pub: k(p[2])?, adv_secret: k(p[3])? })
}
pub fn pair_device_refs_iq(id: &str, refs: &[String]) -> Node {
    NodeBuilder::new("iq").attr("from", "s.whatsapp.net").attr("type", "set").attr("id", id.to_string()).attr("xmlns", "md")
        .children([NodeBuilder::new("pair-device").children(refs.iter().map(|r| NodeBuilder::new("ref").bytes(r.as_bytes().to_vec()).build())).build()]).build()
}
pub fn pair_success_iq(_qr: &ScannedQr, _phone: &str, _device: u16, _lid: Option<&wacore_binary::Jid>, id: &str) -> Node {
    NodeBuilder::new("iq").attr("id", id.to_string()).build()
}
