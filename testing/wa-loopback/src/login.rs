// placeholder until the login module lands
use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;
pub fn success_node(t: i64, _lid: Option<&wacore_binary::Jid>) -> Node {
    NodeBuilder::new("success").attr("t", t.to_string()).build()
}
pub fn answer_iq(iq: &Node) -> Option<Node> {
    let id = iq.attrs().optional_string("id")?.to_string();
    Some(NodeBuilder::new("iq").attr("id", id).attr("type", "result").attr("from", "s.whatsapp.net").build())
}
pub fn ack_for(_n: &Node) -> Option<Node> { None }
pub fn stream_error(code: u16) -> Node { NodeBuilder::new("stream:error").attr("code", code.to_string()).build() }
pub fn replaced() -> Node { NodeBuilder::new("stream:error").children([NodeBuilder::new("conflict").attr("type", "replaced").build()]).build() }
pub fn failure(reason: u16) -> Node { NodeBuilder::new("failure").attr("reason", reason.to_string()).build() }
