//! The encoding stage: chunks of raw lines → token bytes in the shard dtype, one chunk at a
//! time per worker thread. Workers never decide anything order-dependent (shard boundaries,
//! counts, errors): they report per record, and the writer decides in input order, which is
//! why the output does not depend on the number of threads.

use super::input::InputFile;
use super::megatron::Dtype;
use super::reader::{Chunk, Record};
use super::record::{document_text, null_reason, Body};
use super::DocEncoder;
use crate::corpus::error::CorpusError;
use crossbeam_channel::{Receiver, Sender};
use std::panic::{catch_unwind, AssertUnwindSafe};

pub enum Outcome {
    Doc {
        bytes: usize,
        tokens: u64,
        invalid_bytes: u64,
    },
    Empty,
    Bad(String),
}

pub struct Encoded {
    pub seq: u64,
    /// Token bytes of every document of the chunk, back to back.
    pub bytes: Vec<u8>,
    pub records: Vec<Record>,
    pub outcomes: Vec<Outcome>,
    pub error: Option<CorpusError>,
}

pub struct EncodeStage<'a> {
    pub encoder: &'a dyn DocEncoder,
    pub inputs: &'a [InputFile],
    pub text_field: &'a str,
    pub dtype: Dtype,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
}

impl EncodeStage<'_> {
    pub fn run(&self, chunks: Receiver<Chunk>, done: Sender<Encoded>) {
        let mut ids = Vec::new();
        for chunk in chunks {
            let seq = chunk.seq;
            // A panic in the encoder must not leave the writer waiting for this chunk forever.
            let enc = catch_unwind(AssertUnwindSafe(|| self.encode_chunk(chunk, &mut ids)))
                .unwrap_or_else(|p| {
                    ids = Vec::new();
                    let msg = p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    Encoded {
                        seq,
                        bytes: Vec::new(),
                        records: Vec::new(),
                        outcomes: Vec::new(),
                        error: Some(CorpusError::Internal { message: msg }),
                    }
                });
            if done.send(enc).is_err() {
                return;
            }
        }
    }

    fn encode_chunk(&self, chunk: Chunk, ids: &mut Vec<u32>) -> Encoded {
        let mut bytes = Vec::with_capacity(chunk.data.len() / 2);
        let mut outcomes = Vec::with_capacity(chunk.records.len());
        for rec in &chunk.records {
            if rec.null {
                outcomes.push(Outcome::Bad(null_reason(self.text_field)));
                continue;
            }
            let format = self.inputs[rec.file].format;
            let out = match document_text(format, &chunk.data[rec.start..rec.end], self.text_field)
            {
                Err(reason) => Outcome::Bad(reason),
                Ok(doc) if doc.is_empty() => Outcome::Empty,
                Ok(doc) => {
                    ids.clear();
                    ids.extend(self.bos);
                    match &doc.body {
                        Body::Str(s) => self.encoder.encode_str(s, ids),
                        Body::Raw(b) => self.encoder.encode_doc(b, ids),
                    }
                    ids.extend(self.eos);
                    let before = bytes.len();
                    self.dtype.extend_bytes(ids, &mut bytes);
                    Outcome::Doc {
                        bytes: bytes.len() - before,
                        tokens: ids.len() as u64,
                        invalid_bytes: doc.invalid_bytes,
                    }
                }
            };
            outcomes.push(out);
        }
        if ids.capacity() > 1 << 20 {
            // Give back the buffer of a giant document instead of holding it for the run.
            *ids = Vec::new();
        }
        Encoded {
            seq: chunk.seq,
            bytes,
            records: chunk.records,
            outcomes,
            error: chunk.error,
        }
    }
}
