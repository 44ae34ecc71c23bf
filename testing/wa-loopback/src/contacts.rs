// placeholder until the contacts module lands
use wacore_binary::{Jid, Node};
use wacore_binary::builder::NodeBuilder;
#[derive(Default)]
pub struct Contacts;
impl Contacts { pub fn answer(&mut self, _iq: &Node, _own: &Jid) -> Option<Node> { None } }
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentMessage { pub to: Jid, pub id: String, pub kind: String, pub enc_types: Vec<String> }
pub fn sent_message(_n: &Node) -> Option<SentMessage> { None }
pub fn undecryptable_message(from: &Jid, id: &str, t: i64) -> Node {
    NodeBuilder::new("message").attr("from", from.to_string()).attr("id", id.to_string()).attr("t", t.to_string()).build()
}
