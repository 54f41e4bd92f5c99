"""API secrets as keyed digests: the key they are digested with, shared by every replica.

A secret is stored as hmac-sha256$HEX, the HMAC-SHA256 of the secret under the
service_secret `api_key_digest`. Existing scrypt hashes cannot be turned into
digests without their secrets, so they stay as they are: the service replaces
each by its digest the first time the key is used with its right secret.
Code that predates this migration runs against the schema after it, but refuses
the keys stored as digests: every replica runs this release before keys are issued.
"""

import secrets

from peewee import *


def up(migrator, db):
    class ServiceSecretRow(Model):
        name = CharField(max_length=64, primary_key=True)
        value = CharField(max_length=128)

        class Meta:
            database = db
            table_name = "service_secret"

    if not ServiceSecretRow.select().where(ServiceSecretRow.name == "api_key_digest").exists():
        ServiceSecretRow.create(name="api_key_digest", value=secrets.token_hex(32))


def down(migrator, db):
    db.execute_sql(
        "DELETE FROM service_secret WHERE name = %s".replace("%s", db.param), ("api_key_digest",)
    )
