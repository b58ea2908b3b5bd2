//! Orchestrators: services become tasks, tasks that end are replaced,
//! spec changes roll out. (In progress.)
