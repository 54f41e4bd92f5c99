"""Initial schema: organisations, their conversations and the answers (made by `initial`)."""

from peewee import *


def up(migrator, db):
    class OrganisationRow(Model):
        trkref = CharField(unique=True, max_length=32)
        name = CharField(max_length=200)
        locale = CharField(max_length=35)

        class Meta:
            database = db
            table_name = "organisation"

    db.create_tables([OrganisationRow])

    class ConversationRow(Model):
        organisation = ForeignKeyField(OrganisationRow)
        sku = CharField(max_length=100)
        first_name = CharField(max_length=100)
        question = TextField()
        locale = CharField(max_length=35)
        created_at = DateTimeField()
        helpful = IntegerField(default=0)
        unhelpful = IntegerField(default=0)
        embeddable = BooleanField(default=False)
        retailer_locale = CharField(max_length=35)

        class Meta:
            database = db
            table_name = "conversation"
            indexes = ((("organisation", "sku"), False),)

    db.create_tables([ConversationRow])

    class AnswerRow(Model):
        conversation = ForeignKeyField(ConversationRow)
        response = TextField()
        created_at = DateTimeField()
        first_name = CharField(max_length=100)
        town = CharField(max_length=100, default="")
        job_title = CharField(null=True, max_length=100)
        reviewer_segment = CharField(max_length=100, default="")
        helpful = IntegerField(default=0)
        unhelpful = IntegerField(default=0)
        review_url = CharField(max_length=2048, default="")
        review_locale = CharField(max_length=35, default="")
        reviewer_facebook_url = CharField(null=True, max_length=2048)
        response_type = CharField(max_length=20, default="owner")
        retailer_name = CharField(null=True, max_length=200)
        retailer_image_url = CharField(null=True, max_length=2048)

        class Meta:
            database = db
            table_name = "answer"

    db.create_tables([AnswerRow])


def down(migrator, db):
    migrator.migrate(migrator.drop_table("answer"))
    migrator.migrate(migrator.drop_table("conversation"))
    migrator.migrate(migrator.drop_table("organisation"))
