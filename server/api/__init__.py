"""Transport: the gRPC servicer, its interceptors, authentication, error mapping, reflection."""
