//! The kinds of objects the store holds, and what the store needs to know
//! about each: id, meta, name, and the keys of its secondary indexes.

use std::fmt;
use std::sync::Arc;

use swarm_api::v1::{
    Cluster, Config, Meta, Network, Node, Secret, Service, StoredObject, Task, stored_object,
};

use crate::read::ReadTx;
use crate::table::Table;

/// A kind of stored object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// [`Node`].
    Node,
    /// [`Service`].
    Service,
    /// [`Task`].
    Task,
    /// [`Network`].
    Network,
    /// [`Cluster`].
    Cluster,
    /// [`Secret`].
    Secret,
    /// [`Config`].
    Config,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 7] = [
        Kind::Node,
        Kind::Service,
        Kind::Task,
        Kind::Network,
        Kind::Cluster,
        Kind::Secret,
        Kind::Config,
    ];

    /// Lowercase name, as in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Node => "node",
            Kind::Service => "service",
            Kind::Task => "task",
            Kind::Network => "network",
            Kind::Cluster => "cluster",
            Kind::Secret => "secret",
            Kind::Config => "config",
        }
    }

    pub(crate) fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A secondary index. Which kinds have which indexes is listed in
/// [`Object::INDEXES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Index {
    /// Owning service (tasks).
    Service,
    /// Assigned node (tasks).
    Node,
    /// Service and slot (tasks).
    Slot,
    /// Desired state (tasks).
    DesiredState,
    /// Observed state (tasks).
    TaskState,
    /// Attached network (tasks, services).
    Network,
    /// Labels, as `key` and `key=value` (every kind).
    Label,
    /// Role (nodes).
    Role,
}

pub(crate) mod sealed {
    use super::*;

    /// Gives the store access to the table of a kind. Sealed: only the
    /// object kinds of `swarm_api` are stored.
    #[allow(
        unreachable_pub,
        reason = "sealed-trait pattern: public in a private module"
    )]
    pub trait Sealed: Sized {
        fn table(r: &ReadTx) -> &Arc<Table<Self>>;
        fn table_mut(r: &mut ReadTx) -> &mut Arc<Table<Self>>;
    }
}

/// An object the store holds: one of the seven kinds of `swarm_api`.
pub trait Object:
    sealed::Sealed + prost::Message + Default + Clone + PartialEq + Send + Sync + 'static
{
    /// The kind.
    const KIND: Kind;
    /// Whether names are unique within the kind (case-insensitive).
    const UNIQUE_NAMES: bool;
    /// The secondary indexes the kind has.
    const INDEXES: &'static [Index];

    /// The id.
    fn id(&self) -> &str;
    /// The meta, if set.
    fn meta(&self) -> Option<&Meta>;
    /// The meta, created if unset.
    fn meta_mut(&mut self) -> &mut Meta;
    /// The name the name index holds ("" for none).
    fn name(&self) -> &str;
    /// Appends the keys of `index` for this object.
    fn index_keys(&self, index: Index, keys: &mut Vec<String>);
    /// Wraps a shared object into [`AnyObject`].
    fn into_any(obj: Arc<Self>) -> AnyObject;
    /// The object inside an [`AnyObject`] of this kind.
    fn from_any(any: &AnyObject) -> Option<&Arc<Self>>;

    /// The stored version (0 when never stored).
    fn version(&self) -> u64 {
        self.meta().map_or(0, |m| m.version)
    }
}

/// Any stored object, shared.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs, reason = "one variant per kind, named after it")]
pub enum AnyObject {
    Node(Arc<Node>),
    Service(Arc<Service>),
    Task(Arc<Task>),
    Network(Arc<Network>),
    Cluster(Arc<Cluster>),
    Secret(Arc<Secret>),
    Config(Arc<Config>),
}

macro_rules! each {
    ($self:expr, $o:ident => $e:expr) => {
        match $self {
            AnyObject::Node($o) => $e,
            AnyObject::Service($o) => $e,
            AnyObject::Task($o) => $e,
            AnyObject::Network($o) => $e,
            AnyObject::Cluster($o) => $e,
            AnyObject::Secret($o) => $e,
            AnyObject::Config($o) => $e,
        }
    };
}

impl AnyObject {
    /// The kind.
    pub fn kind(&self) -> Kind {
        match self {
            AnyObject::Node(_) => Kind::Node,
            AnyObject::Service(_) => Kind::Service,
            AnyObject::Task(_) => Kind::Task,
            AnyObject::Network(_) => Kind::Network,
            AnyObject::Cluster(_) => Kind::Cluster,
            AnyObject::Secret(_) => Kind::Secret,
            AnyObject::Config(_) => Kind::Config,
        }
    }

    /// The id.
    pub fn id(&self) -> &str {
        each!(self, o => o.id.as_str())
    }

    /// The stored version.
    pub fn version(&self) -> u64 {
        each!(self, o => o.meta.as_ref().map_or(0, |m| m.version))
    }

    /// The object of type `T`, if it is one.
    pub fn downcast<T: Object>(&self) -> Option<&Arc<T>> {
        T::from_any(self)
    }

    /// Encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        each!(self, o => prost::Message::encoded_len(o.as_ref()))
    }

    /// The protobuf form used in log records and snapshots.
    pub fn to_stored(&self) -> StoredObject {
        use stored_object::Object as O;
        let object = match self {
            AnyObject::Node(o) => O::Node((**o).clone()),
            AnyObject::Service(o) => O::Service((**o).clone()),
            AnyObject::Task(o) => O::Task((**o).clone()),
            AnyObject::Network(o) => O::Network((**o).clone()),
            AnyObject::Cluster(o) => O::Cluster((**o).clone()),
            AnyObject::Secret(o) => O::Secret((**o).clone()),
            AnyObject::Config(o) => O::Config((**o).clone()),
        };
        StoredObject {
            object: Some(object),
        }
    }

    /// From the protobuf form; `None` when the record holds no object.
    pub fn from_stored(stored: StoredObject) -> Option<AnyObject> {
        use stored_object::Object as O;
        Some(match stored.object? {
            O::Node(o) => AnyObject::Node(Arc::new(o)),
            O::Service(o) => AnyObject::Service(Arc::new(o)),
            O::Task(o) => AnyObject::Task(Arc::new(o)),
            O::Network(o) => AnyObject::Network(Arc::new(o)),
            O::Cluster(o) => AnyObject::Cluster(Arc::new(o)),
            O::Secret(o) => AnyObject::Secret(Arc::new(o)),
            O::Config(o) => AnyObject::Config(Arc::new(o)),
        })
    }
}

macro_rules! each_stored {
    ($self:expr, $o:ident => $e:expr) => {{
        use stored_object::Object as O;
        match $self {
            O::Node($o) => $e,
            O::Service($o) => $e,
            O::Task($o) => $e,
            O::Network($o) => $e,
            O::Cluster($o) => $e,
            O::Secret($o) => $e,
            O::Config($o) => $e,
        }
    }};
}

/// Kind and id of an object in log-record form, without copying it.
pub(crate) fn stored_kind_id(o: &stored_object::Object) -> (Kind, &str) {
    use stored_object::Object as O;
    let kind = match o {
        O::Node(_) => Kind::Node,
        O::Service(_) => Kind::Service,
        O::Task(_) => Kind::Task,
        O::Network(_) => Kind::Network,
        O::Cluster(_) => Kind::Cluster,
        O::Secret(_) => Kind::Secret,
        O::Config(_) => Kind::Config,
    };
    (kind, each_stored!(o, x => x.id.as_str()))
}

/// The meta of an object in log-record form, created if unset.
pub(crate) fn stored_meta_mut(o: &mut stored_object::Object) -> &mut Meta {
    each_stored!(o, x => x.meta.get_or_insert_with(Meta::default))
}
