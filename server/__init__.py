"""Conversations of the Platform API v4: a gRPC service on peewee storage."""
