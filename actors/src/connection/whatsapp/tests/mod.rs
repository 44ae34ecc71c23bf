mod forwarder;
mod mapping;
mod offline;
