//! The outgoing queue: every byte a connection wants written, in order.
//!
//! Small frames are copied with their header into one contiguous buffer, so a burst of them leaves
//! in a single write; large payloads and pre-encoded shared frames are queued as `Bytes` without a
//! copy. The queue implements [`bytes::Buf`], so a driver can hand
//! [`Buf::chunks_vectored`] to `writev` and then [`Buf::advance`] by what was written. When it has
//! been drained it owns no memory at all: an idle connection holds no write buffer.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, BufMut, Bytes, BytesMut};

thread_local! {
    /// Drained tails of this thread's queues, for the next one that writes. A queue gives its
    /// buffer back as soon as everything is written (an idle connection holds none) and the next
    /// write on this thread takes it from here instead of the allocator: a server answering one
    /// small message at a time costs no `malloc`/`free` pair per message for its writes.
    static SPARE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// At most this many spare buffers per thread...
const SPARE_COUNT: usize = 64;
/// ...of at most this capacity each (larger ones go back to the allocator): 256 KiB per thread.
const SPARE_CAPACITY: usize = 4096;

fn take_spare() -> BytesMut {
    SPARE.try_with(|s| s.borrow_mut().pop()).ok().flatten().unwrap_or_default()
}

fn give_back(mut buf: BytesMut) {
    if buf.capacity() == 0 || buf.capacity() > SPARE_CAPACITY {
        return;
    }
    buf.clear();
    let _ = SPARE.try_with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < SPARE_COUNT {
            s.push(buf);
        }
    });
}

/// The queue of bytes to write. See the [module docs](self).
#[derive(Debug, Default)]
pub struct Outgoing {
    /// Segments before `tail`, in order.
    segments: VecDeque<Bytes>,
    /// The last segment, still growing.
    tail: BytesMut,
    /// How many bytes of `tail` were already written (kept so `tail` can keep growing).
    tail_read: usize,
    /// Total unwritten bytes.
    len: usize,
}

impl Outgoing {
    /// Unwritten bytes in the queue: the `bufferedAmount` of a browser's WebSocket.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether everything has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Makes room for `additional` more bytes in the contiguous tail.
    pub fn reserve(&mut self, additional: usize) {
        self.tail_with_room();
        self.tail.reserve(additional);
    }

    /// A tail to write into: a spare buffer of this thread's if the queue holds none.
    fn tail_with_room(&mut self) {
        if self.tail.capacity() == 0 {
            self.tail = take_spare();
        }
    }

    /// Appends bytes by copying them into the contiguous tail.
    pub fn copy_from(&mut self, data: &[u8]) {
        self.tail_with_room();
        self.tail.extend_from_slice(data);
        self.len += data.len();
    }

    /// Appends `data` masked with `key` (from key byte 0) to the tail, in one pass: each byte is
    /// read, masked and written straight into the tail's free capacity (a client's frames).
    pub fn copy_masked(&mut self, data: &[u8], key: [u8; 4]) {
        self.tail_with_room();
        self.tail.reserve(data.len());
        crate::mask::mask_into(&mut self.tail.spare_capacity_mut()[..data.len()], data, key);
        // SAFETY: `mask_into` wrote every one of the first `data.len()` bytes of the spare
        // capacity (reserved above), so they are initialised.
        unsafe { self.tail.set_len(self.tail.len() + data.len()) };
        self.len += data.len();
    }

    /// Appends `len` bytes written by `fill` into the tail (zero-filled first; to mask while
    /// copying, [`copy_masked`](Self::copy_masked) skips the zeroing).
    pub fn fill_with(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) {
        let written = self.fill_up_to(len, |buf| {
            fill(buf);
            Ok::<_, std::convert::Infallible>(buf.len())
        });
        debug_assert_eq!(written, Ok(len));
    }

    /// Lets `fill` write into up to `max` bytes of the tail (zero-filled first) and keeps the
    /// `n` it reports (`n <= max`); on an error nothing is kept. For encoders that say how much
    /// they wrote, or that the room was too small (a TLS record sealed into the queue).
    pub fn fill_up_to<E>(&mut self, max: usize, fill: impl FnOnce(&mut [u8]) -> Result<usize, E>) -> Result<usize, E> {
        self.tail_with_room();
        let start = self.tail.len();
        self.tail.reserve(max);
        self.tail.put_bytes(0, max);
        match fill(&mut self.tail[start..]) {
            Ok(n) => {
                assert!(n <= max, "fill_up_to: {n} bytes reported written into {max}");
                self.tail.truncate(start + n);
                self.len += n;
                Ok(n)
            }
            Err(e) => {
                self.tail.truncate(start);
                Err(e)
            }
        }
    }

    /// Appends a segment without copying it.
    pub fn push(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        self.seal_tail();
        self.len += data.len();
        self.segments.push_back(data);
    }

    /// Moves the unwritten part of the tail into the segment list.
    fn seal_tail(&mut self) {
        if self.tail.len() > self.tail_read {
            let mut t = self.tail.split();
            let _ = t.split_to(self.tail_read);
            self.segments.push_back(t.freeze());
        } else {
            self.tail.clear();
        }
        self.tail_read = 0;
    }
}

impl Buf for Outgoing {
    fn remaining(&self) -> usize {
        self.len
    }

    fn chunk(&self) -> &[u8] {
        match self.segments.front() {
            Some(s) => s,
            None => &self.tail[self.tail_read..],
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for s in &self.segments {
            if n == dst.len() {
                return n;
            }
            dst[n] = IoSlice::new(s);
            n += 1;
        }
        if n < dst.len() && self.tail.len() > self.tail_read {
            dst[n] = IoSlice::new(&self.tail[self.tail_read..]);
            n += 1;
        }
        n
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(cnt <= self.len, "advance past the end of the outgoing queue");
        self.len -= cnt;
        while cnt > 0 {
            match self.segments.front_mut() {
                Some(front) if front.len() <= cnt => {
                    cnt -= front.len();
                    self.segments.pop_front();
                }
                Some(front) => {
                    front.advance(cnt);
                    cnt = 0;
                }
                None => {
                    self.tail_read += cnt;
                    cnt = 0;
                }
            }
        }
        if self.len == 0 {
            // Drained: give the memory back so an idle connection holds none.
            give_back(std::mem::take(&mut self.tail));
            self.tail_read = 0;
            self.segments = VecDeque::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_up_to_keeps_what_was_reported_and_nothing_on_error() {
        let mut q = Outgoing::default();
        q.copy_from(b"ab");
        assert_eq!(
            q.fill_up_to(8, |b| Err::<usize, &str>(if b.len() == 8 { "too small" } else { "?" })),
            Err("too small")
        );
        assert_eq!(q.len(), 2);
        assert_eq!(
            q.fill_up_to(8, |b| {
                b[..3].copy_from_slice(b"cde");
                Ok::<_, ()>(3)
            }),
            Ok(3)
        );
        assert_eq!(q.len(), 5);
        assert_eq!(&q.copy_to_bytes(5)[..], b"abcde");
    }

    #[test]
    fn keeps_order_across_copies_and_segments() {
        let mut q = Outgoing::default();
        q.copy_from(b"ab");
        q.push(Bytes::from_static(b"cd"));
        q.copy_from(b"ef");
        q.fill_with(2, |b| b.copy_from_slice(b"gh"));
        // Masked with key 1 2 3 4 from key byte 0: "ij" ^ [1, 2] = "hh".
        q.copy_masked(b"ij", [1, 2, 3, 4]);
        assert_eq!(q.len(), 10);
        let mut slices = [IoSlice::new(&[]); 8];
        let n = q.chunks_vectored(&mut slices);
        let joined: Vec<u8> = slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
        assert_eq!(joined, b"abcdefghhh");
        q.advance(3);
        assert_eq!(q.chunk(), b"d");
        q.copy_from(b"ij");
        let all = q.copy_to_bytes(q.remaining());
        assert_eq!(&all[..], b"defghhhij");
        assert!(q.is_empty());
        assert_eq!(q.tail.capacity(), 0, "drained queue must hold no buffer");
    }

    #[test]
    fn partial_write_of_tail_then_growth() {
        let mut q = Outgoing::default();
        q.copy_from(b"hello");
        q.advance(2);
        q.copy_from(b" world");
        q.push(Bytes::from_static(b"!"));
        assert_eq!(&q.copy_to_bytes(q.remaining())[..], b"llo world!");
    }
}
