//! Built without the cargo feature `deflate`: no codec. The types below have no values, so a
//! connection never holds permessage-deflate state, and the handshake never offers or accepts
//! the extension ([`AVAILABLE`] is false).

/// The codec is not compiled in.
pub(crate) const AVAILABLE: bool = false;

/// Never any codecs: permessage-deflate stays off.
pub(crate) fn codecs(
    _level: u32,
    _mem_level: u8,
    _own: (u8, bool),
    _peer: (u8, bool),
) -> Option<(Compressor, Decompressor)> {
    None
}

/// A compressor that cannot exist.
#[derive(Debug)]
pub(crate) enum Compressor {}

impl Compressor {
    pub(crate) fn is_allocated(&self) -> bool {
        match *self {}
    }

    pub(crate) fn window_bits(&self) -> u8 {
        match *self {}
    }

    pub(crate) fn memory_level(&self) -> u8 {
        match *self {}
    }

    pub(crate) fn release(&mut self) {
        match *self {}
    }

    pub(crate) fn compress(&mut self, _input: &[u8], _out: &mut Vec<u8>, _end: bool) {
        match *self {}
    }
}

/// What one call of [`Decompressor::inflate`] did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Inflated {
    /// Input bytes consumed.
    pub consumed: usize,
    /// It stopped because `out` reached its cap.
    pub full: bool,
}

/// A decompressor that cannot exist.
#[derive(Debug)]
pub(crate) enum Decompressor {}

impl Decompressor {
    pub(crate) fn is_allocated(&self) -> bool {
        match *self {}
    }

    pub(crate) fn history_len(&self) -> usize {
        match *self {}
    }

    pub(crate) fn window_bits(&self) -> u8 {
        match *self {}
    }

    pub(crate) fn release(&mut self) {
        match *self {}
    }

    pub(crate) fn inflate(&mut self, _input: &[u8], _out: &mut Vec<u8>, _cap: usize) -> Result<Inflated, String> {
        match *self {}
    }

    pub(crate) fn end_message(&mut self) {
        match *self {}
    }
}

pub(crate) fn compressor_heap_size(_bits: u8, _mem_level: u8) -> usize {
    0
}

pub(crate) fn decompressor_heap_size(_bits: u8) -> usize {
    0
}
