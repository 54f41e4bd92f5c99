"""Storage: the peewee models, the queries per aggregate, and the Store that owns the database."""
