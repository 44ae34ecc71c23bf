mod cert_check;
mod forwarder;
mod loopback;
mod mapping;
mod offline;
mod supervised;
