mod forwarder;
mod mapping;
mod offline;
mod supervised;
mod loopback;
