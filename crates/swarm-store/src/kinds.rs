//! [`Object`] for each of the seven kinds: names and index keys.

use std::collections::BTreeMap;
use std::sync::Arc;

use swarm_api::EnumName;
use swarm_api::v1::{Annotations, Cluster, Config, Meta, Network, Node, Secret, Service, Task};

use crate::object::{AnyObject, Index, Kind, Object, sealed};
use crate::read::ReadTx;
use crate::table::Table;

macro_rules! object_common {
    ($ty:ident, $field:ident) => {
        impl sealed::Sealed for $ty {
            fn table(r: &ReadTx) -> &Arc<Table<Self>> {
                &r.$field
            }
            fn table_mut(r: &mut ReadTx) -> &mut Arc<Table<Self>> {
                &mut r.$field
            }
        }
    };
}

macro_rules! object_accessors {
    ($ty:ident) => {
        fn id(&self) -> &str {
            &self.id
        }
        fn meta(&self) -> Option<&Meta> {
            self.meta.as_ref()
        }
        fn meta_mut(&mut self) -> &mut Meta {
            self.meta.get_or_insert_with(Meta::default)
        }
        fn into_any(obj: Arc<Self>) -> AnyObject {
            AnyObject::$ty(obj)
        }
        fn from_any(any: &AnyObject) -> Option<&Arc<Self>> {
            match any {
                AnyObject::$ty(o) => Some(o),
                _ => None,
            }
        }
    };
}

object_common!(Node, nodes);
object_common!(Service, services);
object_common!(Task, tasks);
object_common!(Network, networks);
object_common!(Cluster, clusters);
object_common!(Secret, secrets);
object_common!(Config, configs);

/// Label keys: `key\0value`, so a prefix scan on `key\0` finds every value.
pub(crate) fn label_keys(labels: &BTreeMap<String, String>, keys: &mut Vec<String>) {
    for (k, v) in labels {
        keys.push(label_key(k, Some(v)));
    }
}

/// The key (or key prefix, without a value) of a label.
pub(crate) fn label_key(k: &str, v: Option<&str>) -> String {
    match v {
        Some(v) => format!("{k}\0{v}"),
        None => format!("{k}\0"),
    }
}

/// Key of a state index: zero-padded so keys sort like states.
pub(crate) fn state_key(state: i32) -> String {
    format!("{state:05}")
}

/// Key of the slot index.
pub(crate) fn slot_key(service_id: &str, slot: u64) -> String {
    format!("{service_id}\0{slot}")
}

fn annotations_name(a: &Option<Annotations>) -> &str {
    a.as_ref().map_or("", |a| a.name.as_str())
}

fn annotation_labels(a: &Option<Annotations>, keys: &mut Vec<String>) {
    if let Some(a) = a {
        label_keys(&a.labels, keys);
    }
}

impl Object for Node {
    const KIND: Kind = Kind::Node;
    const UNIQUE_NAMES: bool = false;
    const INDEXES: &'static [Index] = &[Index::Role, Index::Label];
    object_accessors!(Node);

    /// The spec name if set, else the hostname.
    fn name(&self) -> &str {
        let spec_name = self
            .spec
            .as_ref()
            .map_or("", |s| annotations_name(&s.annotations));
        if !spec_name.is_empty() {
            return spec_name;
        }
        self.description
            .as_ref()
            .map_or("", |d| d.hostname.as_str())
    }

    fn index_keys(&self, index: Index, keys: &mut Vec<String>) {
        match index {
            Index::Role => keys.push(self.role().short_name().to_string()),
            Index::Label => {
                if let Some(s) = &self.spec {
                    annotation_labels(&s.annotations, keys);
                }
            }
            _ => {}
        }
    }
}

impl Object for Service {
    const KIND: Kind = Kind::Service;
    const UNIQUE_NAMES: bool = true;
    const INDEXES: &'static [Index] = &[Index::Network, Index::Label];
    object_accessors!(Service);

    fn name(&self) -> &str {
        self.spec
            .as_ref()
            .map_or("", |s| annotations_name(&s.annotations))
    }

    fn index_keys(&self, index: Index, keys: &mut Vec<String>) {
        let Some(spec) = &self.spec else { return };
        match index {
            Index::Network => {
                if let Some(t) = &spec.task {
                    keys.extend(t.networks.iter().map(|n| n.target.clone()));
                }
            }
            Index::Label => annotation_labels(&spec.annotations, keys),
            _ => {}
        }
    }
}

impl Object for Task {
    const KIND: Kind = Kind::Task;
    const UNIQUE_NAMES: bool = false;
    const INDEXES: &'static [Index] = &[
        Index::Service,
        Index::Node,
        Index::Slot,
        Index::DesiredState,
        Index::TaskState,
        Index::Network,
        Index::Label,
    ];
    object_accessors!(Task);

    /// `<service>.<slot>` (replicated) or `<service>.<node>` (global): the
    /// name shared by the tasks of one slot. (Docker shows the task id
    /// appended; see `Task::display_name`.)
    fn name(&self) -> &str {
        annotations_name(&self.annotations)
    }

    fn index_keys(&self, index: Index, keys: &mut Vec<String>) {
        match index {
            Index::Service => keys.push(self.service_id.clone()),
            Index::Node => keys.push(self.node_id.clone()),
            Index::Slot if self.slot != 0 => keys.push(slot_key(&self.service_id, self.slot)),
            Index::DesiredState => keys.push(state_key(self.desired_state)),
            Index::TaskState => keys.push(state_key(self.status.as_ref().map_or(0, |s| s.state))),
            Index::Network => keys.extend(
                self.networks
                    .iter()
                    .filter_map(|n| n.network.as_ref())
                    .map(|n| n.id.clone()),
            ),
            Index::Label => annotation_labels(&self.annotations, keys),
            _ => {}
        }
    }
}

macro_rules! named_object {
    ($ty:ident, $kind:ident) => {
        impl Object for $ty {
            const KIND: Kind = Kind::$kind;
            const UNIQUE_NAMES: bool = true;
            const INDEXES: &'static [Index] = &[Index::Label];
            object_accessors!($ty);

            fn name(&self) -> &str {
                self.spec
                    .as_ref()
                    .map_or("", |s| annotations_name(&s.annotations))
            }

            fn index_keys(&self, index: Index, keys: &mut Vec<String>) {
                if index == Index::Label {
                    if let Some(s) = &self.spec {
                        annotation_labels(&s.annotations, keys);
                    }
                }
            }
        }
    };
}

named_object!(Network, Network);
named_object!(Cluster, Cluster);
named_object!(Secret, Secret);
named_object!(Config, Config);
