mod mapping;
