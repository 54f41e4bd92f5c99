"""The schema migrations, one script each, applied in order by peewee's runner (migrate.py)."""
