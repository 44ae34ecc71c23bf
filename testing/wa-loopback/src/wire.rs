//! The transport after the handshake: length-prefixed frames, each one AES-GCM
//! sealed with a per-direction counter, holding one binary node.

use bytes::BytesMut;
use wacore_binary::Node;
use wacore_binary::marshal::{marshal, unmarshal_ref};
use wacore_noise::NoiseCipher;
use wacore_noise::framing::encode_frame;

use crate::error::LoopbackError;

/// Both directions of one connection's transport.
pub struct Wire {
    read: NoiseCipher,
    write: NoiseCipher,
    read_counter: u32,
    write_counter: u32,
}

impl Wire {
    pub fn new(read: NoiseCipher, write: NoiseCipher) -> Self {
        Self {
            read,
            write,
            read_counter: 0,
            write_counter: 0,
        }
    }

    /// Opens one frame the client sent.
    pub fn open(&mut self, mut frame: BytesMut) -> Result<Node, LoopbackError> {
        self.read
            .decrypt_in_place_with_counter(self.read_counter, &mut frame)
            .map_err(|e| LoopbackError::Frame(e.to_string()))?;
        self.read_counter += 1;
        let plain = wacore_binary::util::unpack_bytes(frame)
            .map_err(|e| LoopbackError::Node(e.to_string()))?;
        let node = unmarshal_ref(&plain).map_err(|e| LoopbackError::Node(e.to_string()))?;
        Ok(node.to_owned())
    }

    /// Seals one node into a frame for the client.
    pub fn seal(&mut self, node: &Node) -> Result<Vec<u8>, LoopbackError> {
        let plain = marshal(node).map_err(|e| LoopbackError::Node(e.to_string()))?;
        let sealed = self
            .write
            .encrypt_with_counter(self.write_counter, &plain)
            .map_err(|e| LoopbackError::Frame(e.to_string()))?;
        self.write_counter += 1;
        encode_frame(&sealed, None).map_err(|e| LoopbackError::Frame(e.to_string()))
    }
}
