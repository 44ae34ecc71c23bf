mod cert_check;
mod forwarder;
mod mapping;
mod offline;
mod supervised;
