"""API keys: the keys, and the organisations each may reach (made by `generate`)."""

from peewee import *


def up(migrator, db):
    class OrganisationRow(Model):
        class Meta:
            database = db
            table_name = "organisation"

    class ApiKeyRow(Model):
        key_id = CharField(unique=True, max_length=64)
        secret_hash = CharField()
        created_at = DateTimeField()
        revoked_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = "api_key"

    db.create_tables([ApiKeyRow])

    class ApiKeyOrganisationRow(Model):
        api_key = ForeignKeyField(ApiKeyRow, on_delete="CASCADE")
        organisation = ForeignKeyField(OrganisationRow, on_delete="CASCADE")

        class Meta:
            database = db
            table_name = "api_key_organisation"
            indexes = ((("api_key", "organisation"), True),)

    db.create_tables([ApiKeyOrganisationRow])


def down(migrator, db):
    migrator.migrate(migrator.drop_table("api_key_organisation"))
    migrator.migrate(migrator.drop_table("api_key"))
