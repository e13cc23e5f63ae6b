//! The wheel's entry storage: nodes in one vector, addressed by generational keys and
//! reused through a free list, so scheduling allocates nothing once the vector is warm.
//!
//! A node is linked into at most one [`List`] at a time (a wheel slot, the overflow or
//! the due list); the links are indices into the same vector, so moving a timer between
//! lists is a few index writes.

/// "No node": the end of a list, or of the free list.
pub(super) const NIL: u32 = u32::MAX;

/// Handle to a scheduled timer: stays valid until the timer fires or is removed, after
/// which the node's generation has moved on and the key matches nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    index: u32,
    generation: u32,
}

/// Which list a node is in; `remove` and `reset` unlink from there in O(1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    /// On the free list.
    Free,
    /// In slot `slot` of level `level`.
    Slot { level: u8, slot: u8 },
    /// Beyond the wheel's horizon.
    Overflow,
    /// Due: waiting to be returned by `poll_expired`.
    Due,
}

pub(super) struct Node<T> {
    /// The timer's value; `None` exactly when `place == Place::Free`.
    value: Option<T>,
    /// Bumped each time the node is freed, so old keys stop matching.
    generation: u32,
    /// The requested deadline, in ticks.
    pub(super) when: u64,
    pub(super) place: Place,
    prev: u32,
    /// Next node in the same list (or in the free list, for a free node).
    next: u32,
}

/// A doubly linked list of nodes, by index.
///
/// Invariant: `head == NIL` iff `tail == NIL`; following `next` from `head` reaches
/// `tail` and then `NIL`.
#[derive(Debug, Clone, Copy)]
pub(super) struct List {
    head: u32,
    tail: u32,
}

impl Default for List {
    fn default() -> Self {
        Self { head: NIL, tail: NIL }
    }
}

impl List {
    pub(super) fn is_empty(&self) -> bool {
        debug_assert_eq!(self.head == NIL, self.tail == NIL, "list ends disagree: {self:?}");
        self.head == NIL
    }
}

/// Nodes plus the free list.
pub(super) struct Slab<T> {
    nodes: Vec<Node<T>>,
    /// Head of the free list (linked through `Node::next`).
    free: u32,
    /// Live (non-free) nodes.
    len: usize,
}

// ===== impl Slab =====

impl<T> Slab<T> {
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self {
            nodes: Vec::with_capacity(capacity),
            free: NIL,
            len: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn reserve(&mut self, additional: usize) {
        let spare = self.nodes.capacity() - self.nodes.len();
        if additional > spare {
            self.nodes.reserve(additional);
        }
    }

    /// A new, unlinked node holding `value`; its place is still `Free` until linked.
    ///
    /// # Panics
    /// With more than `u32::MAX - 1` live timers.
    pub(super) fn insert(&mut self, value: T, when: u64) -> u32 {
        self.len += 1;
        if self.free != NIL {
            let index = self.free;
            let node = &mut self.nodes[index as usize];
            debug_assert!(node.value.is_none(), "free list holds a live node at {index}");
            self.free = node.next;
            node.value = Some(value);
            node.when = when;
            node.prev = NIL;
            node.next = NIL;
            return index;
        }
        let index = u32::try_from(self.nodes.len()).ok().filter(|&i| i != NIL);
        let index = index.expect("fewer than u32::MAX timers");
        self.nodes.push(Node {
            value: Some(value),
            generation: 0,
            when,
            place: Place::Free,
            prev: NIL,
            next: NIL,
        });
        index
    }

    /// Frees an unlinked node and returns its value; its key stops matching.
    pub(super) fn remove(&mut self, index: u32) -> T {
        let node = &mut self.nodes[index as usize];
        debug_assert_eq!(node.place, Place::Free, "node {index} freed while still linked");
        node.generation = node.generation.wrapping_add(1);
        node.next = self.free;
        self.free = index;
        self.len -= 1;
        node.value.take().expect("live node")
    }

    pub(super) fn key(&self, index: u32) -> Key {
        Key {
            index,
            generation: self.nodes[index as usize].generation,
        }
    }

    /// The node `key` names, if it is still live.
    pub(super) fn index(&self, key: Key) -> Option<u32> {
        let node = self.nodes.get(key.index as usize)?;
        (node.generation == key.generation && node.value.is_some()).then_some(key.index)
    }

    pub(super) fn node(&self, index: u32) -> &Node<T> {
        &self.nodes[index as usize]
    }

    pub(super) fn node_mut(&mut self, index: u32) -> &mut Node<T> {
        &mut self.nodes[index as usize]
    }

    pub(super) fn value(&self, index: u32) -> &T {
        self.nodes[index as usize].value.as_ref().expect("live node")
    }

    /// Links `index` at the end of `list`, as `place`.
    pub(super) fn push_back(&mut self, list: &mut List, index: u32, place: Place) {
        let node = &mut self.nodes[index as usize];
        debug_assert_eq!(node.place, Place::Free, "node {index} linked twice");
        node.place = place;
        node.prev = list.tail;
        node.next = NIL;
        match list.tail {
            NIL => list.head = index,
            tail => self.nodes[tail as usize].next = index,
        }
        list.tail = index;
    }

    /// Unlinks `index` from `list`, which must be the list it is in.
    pub(super) fn unlink(&mut self, list: &mut List, index: u32) {
        let node = &mut self.nodes[index as usize];
        let (prev, next) = (node.prev, node.next);
        node.place = Place::Free;
        match prev {
            NIL => list.head = next,
            prev => self.nodes[prev as usize].next = next,
        }
        match next {
            NIL => list.tail = prev,
            next => self.nodes[next as usize].prev = prev,
        }
    }

    /// Unlinks and returns the first node of `list`.
    pub(super) fn pop_front(&mut self, list: &mut List) -> Option<u32> {
        let head = list.head;
        if head == NIL {
            return None;
        }
        self.unlink(list, head);
        Some(head)
    }
}
