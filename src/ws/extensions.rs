//! A typed map for per-connection state.
//!
//! Layers and guards attach values at upgrade time (a route's captures, an authenticated user) and
//! handlers keep their own per-connection state here. Unlike `http::Extensions`, values need not be
//! `Clone`: a connection's state belongs to that connection alone.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;

/// A map from type to one value of that type.
#[derive(Default)]
pub struct Extensions {
    // Most connections carry nothing or a couple of values: allocate only on first insert.
    map: Option<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
}

impl Extensions {
    /// An empty map (allocates nothing).
    pub fn new() -> Self {
        Extensions::default()
    }

    /// Inserts a value, returning the previous value of the same type.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        self.map
            .get_or_insert_with(HashMap::new)
            .insert(TypeId::of::<T>(), Box::new(value))
            .and_then(|old| old.downcast().ok().map(|boxed| *boxed))
    }

    /// The value of type `T`, if present.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.map.as_ref()?.get(&TypeId::of::<T>())?.downcast_ref()
    }

    /// The value of type `T`, mutably, if present.
    pub fn get_mut<T: Send + Sync + 'static>(&mut self) -> Option<&mut T> {
        self.map
            .as_mut()?
            .get_mut(&TypeId::of::<T>())?
            .downcast_mut()
    }

    /// The value of type `T`, inserting `T::default()` first if absent.
    pub fn get_or_default<T: Default + Send + Sync + 'static>(&mut self) -> &mut T {
        self.map
            .get_or_insert_with(HashMap::new)
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()))
            .downcast_mut()
            .expect("an entry's value always has the type of its key")
    }

    /// Removes and returns the value of type `T`.
    pub fn remove<T: Send + Sync + 'static>(&mut self) -> Option<T> {
        self.map
            .as_mut()?
            .remove(&TypeId::of::<T>())
            .and_then(|old| old.downcast().ok().map(|boxed| *boxed))
    }

    /// Whether a value of type `T` is present.
    pub fn contains<T: Send + Sync + 'static>(&self) -> bool {
        self.get::<T>().is_some()
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.map.as_ref().map_or(0, HashMap::len)
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extensions")
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Default)]
    struct Counter(u32);

    #[test]
    fn insert_get_replace_remove() {
        let mut extensions = Extensions::new();
        assert!(extensions.is_empty());
        assert_eq!(extensions.insert(Counter(1)), None);
        assert_eq!(extensions.insert(Counter(2)), Some(Counter(1)));
        extensions.get_mut::<Counter>().expect("present").0 += 1;
        assert_eq!(extensions.get::<Counter>(), Some(&Counter(3)));
        assert!(!extensions.contains::<String>());
        assert_eq!(extensions.remove::<Counter>(), Some(Counter(3)));
        assert!(extensions.is_empty());
        extensions.get_or_default::<Counter>().0 += 5;
        assert_eq!(extensions.get::<Counter>(), Some(&Counter(5)));
    }
}
