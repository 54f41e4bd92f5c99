import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATUS_UNSPECIFIED: _ClassVar[Status]
    PENDING: _ClassVar[Status]
    PUBLISHED: _ClassVar[Status]
    REJECTED: _ClassVar[Status]
    ERASED: _ClassVar[Status]

class ReportReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPORT_REASON_UNSPECIFIED: _ClassVar[ReportReason]
    SPAM: _ClassVar[ReportReason]
    OFFENSIVE: _ClassVar[ReportReason]
    OFF_TOPIC: _ClassVar[ReportReason]
    PERSONAL_INFORMATION: _ClassVar[ReportReason]
    OTHER: _ClassVar[ReportReason]
STATUS_UNSPECIFIED: Status
PENDING: Status
PUBLISHED: Status
REJECTED: Status
ERASED: Status
REPORT_REASON_UNSPECIFIED: ReportReason
SPAM: ReportReason
OFFENSIVE: ReportReason
OFF_TOPIC: ReportReason
PERSONAL_INFORMATION: ReportReason
OTHER: ReportReason

class CreateConversationRequest(_message.Message):
    __slots__ = ("trkref", "first_name", "question", "locale", "sku", "request_id")
    TRKREF_FIELD_NUMBER: _ClassVar[int]
    FIRST_NAME_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    LOCALE_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    trkref: str
    first_name: str
    question: str
    locale: str
    sku: str
    request_id: str
    def __init__(self, trkref: _Optional[str] = ..., first_name: _Optional[str] = ..., question: _Optional[str] = ..., locale: _Optional[str] = ..., sku: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class Conversation(_message.Message):
    __slots__ = ("id", "first_name", "question", "created_at", "helpful", "unhelpful", "embeddable", "retailer_locale", "answers", "answers_count", "answers_next_page_token", "status", "held_for")
    ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_NAME_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    HELPFUL_FIELD_NUMBER: _ClassVar[int]
    UNHELPFUL_FIELD_NUMBER: _ClassVar[int]
    EMBEDDABLE_FIELD_NUMBER: _ClassVar[int]
    RETAILER_LOCALE_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_COUNT_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HELD_FOR_FIELD_NUMBER: _ClassVar[int]
    id: int
    first_name: str
    question: str
    created_at: _timestamp_pb2.Timestamp
    helpful: int
    unhelpful: int
    embeddable: bool
    retailer_locale: str
    answers: _containers.RepeatedCompositeFieldContainer[Answer]
    answers_count: int
    answers_next_page_token: str
    status: Status
    held_for: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[int] = ..., first_name: _Optional[str] = ..., question: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., helpful: _Optional[int] = ..., unhelpful: _Optional[int] = ..., embeddable: _Optional[bool] = ..., retailer_locale: _Optional[str] = ..., answers: _Optional[_Iterable[_Union[Answer, _Mapping]]] = ..., answers_count: _Optional[int] = ..., answers_next_page_token: _Optional[str] = ..., status: _Optional[_Union[Status, str]] = ..., held_for: _Optional[_Iterable[str]] = ...) -> None: ...

class Answer(_message.Message):
    __slots__ = ("id", "response", "created_at", "first_name", "town", "job_title", "reviewer_segment", "helpful", "unhelpful", "review_url", "review_locale", "reviewer_facebook_url", "response_type", "retailer_name", "retailer_image_url", "status", "held_for")
    ID_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    FIRST_NAME_FIELD_NUMBER: _ClassVar[int]
    TOWN_FIELD_NUMBER: _ClassVar[int]
    JOB_TITLE_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_SEGMENT_FIELD_NUMBER: _ClassVar[int]
    HELPFUL_FIELD_NUMBER: _ClassVar[int]
    UNHELPFUL_FIELD_NUMBER: _ClassVar[int]
    REVIEW_URL_FIELD_NUMBER: _ClassVar[int]
    REVIEW_LOCALE_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_FACEBOOK_URL_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_TYPE_FIELD_NUMBER: _ClassVar[int]
    RETAILER_NAME_FIELD_NUMBER: _ClassVar[int]
    RETAILER_IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HELD_FOR_FIELD_NUMBER: _ClassVar[int]
    id: int
    response: str
    created_at: _timestamp_pb2.Timestamp
    first_name: str
    town: str
    job_title: str
    reviewer_segment: str
    helpful: int
    unhelpful: int
    review_url: str
    review_locale: str
    reviewer_facebook_url: str
    response_type: str
    retailer_name: str
    retailer_image_url: str
    status: Status
    held_for: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[int] = ..., response: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., first_name: _Optional[str] = ..., town: _Optional[str] = ..., job_title: _Optional[str] = ..., reviewer_segment: _Optional[str] = ..., helpful: _Optional[int] = ..., unhelpful: _Optional[int] = ..., review_url: _Optional[str] = ..., review_locale: _Optional[str] = ..., reviewer_facebook_url: _Optional[str] = ..., response_type: _Optional[str] = ..., retailer_name: _Optional[str] = ..., retailer_image_url: _Optional[str] = ..., status: _Optional[_Union[Status, str]] = ..., held_for: _Optional[_Iterable[str]] = ...) -> None: ...

class GetConversationRequest(_message.Message):
    __slots__ = ("id", "trkref")
    ID_FIELD_NUMBER: _ClassVar[int]
    TRKREF_FIELD_NUMBER: _ClassVar[int]
    id: int
    trkref: str
    def __init__(self, id: _Optional[int] = ..., trkref: _Optional[str] = ...) -> None: ...

class ListConversationsRequest(_message.Message):
    __slots__ = ("trkref", "sku", "locale", "page_size", "page_token", "order_by", "answers_page_size", "search", "filter")
    TRKREF_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    LOCALE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    SEARCH_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    trkref: str
    sku: str
    locale: str
    page_size: int
    page_token: str
    order_by: str
    answers_page_size: int
    search: str
    filter: str
    def __init__(self, trkref: _Optional[str] = ..., sku: _Optional[str] = ..., locale: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., order_by: _Optional[str] = ..., answers_page_size: _Optional[int] = ..., search: _Optional[str] = ..., filter: _Optional[str] = ...) -> None: ...

class ListConversationsResponse(_message.Message):
    __slots__ = ("summary", "conversations", "next_page_token")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    CONVERSATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    summary: ConversationSummary
    conversations: _containers.RepeatedCompositeFieldContainer[Conversation]
    next_page_token: str
    def __init__(self, summary: _Optional[_Union[ConversationSummary, _Mapping]] = ..., conversations: _Optional[_Iterable[_Union[Conversation, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListAnswersRequest(_message.Message):
    __slots__ = ("conversation_id", "trkref", "page_size", "page_token", "filter")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    TRKREF_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    conversation_id: int
    trkref: str
    page_size: int
    page_token: str
    filter: str
    def __init__(self, conversation_id: _Optional[int] = ..., trkref: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[str] = ...) -> None: ...

class ListAnswersResponse(_message.Message):
    __slots__ = ("answers", "next_page_token", "answers_count")
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_COUNT_FIELD_NUMBER: _ClassVar[int]
    answers: _containers.RepeatedCompositeFieldContainer[Answer]
    next_page_token: str
    answers_count: int
    def __init__(self, answers: _Optional[_Iterable[_Union[Answer, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., answers_count: _Optional[int] = ...) -> None: ...

class ConversationSummary(_message.Message):
    __slots__ = ("question_count", "answers_count")
    QUESTION_COUNT_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_COUNT_FIELD_NUMBER: _ClassVar[int]
    question_count: int
    answers_count: int
    def __init__(self, question_count: _Optional[int] = ..., answers_count: _Optional[int] = ...) -> None: ...

class CreateAnswerRequest(_message.Message):
    __slots__ = ("conversation_id", "trkref", "answer")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    TRKREF_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    conversation_id: int
    trkref: str
    answer: NewAnswer
    def __init__(self, conversation_id: _Optional[int] = ..., trkref: _Optional[str] = ..., answer: _Optional[_Union[NewAnswer, _Mapping]] = ...) -> None: ...

class NewAnswer(_message.Message):
    __slots__ = ("response", "first_name", "response_type", "town", "job_title", "reviewer_segment", "review_url", "review_locale", "reviewer_facebook_url", "retailer_name", "retailer_image_url", "request_id")
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    FIRST_NAME_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_TYPE_FIELD_NUMBER: _ClassVar[int]
    TOWN_FIELD_NUMBER: _ClassVar[int]
    JOB_TITLE_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_SEGMENT_FIELD_NUMBER: _ClassVar[int]
    REVIEW_URL_FIELD_NUMBER: _ClassVar[int]
    REVIEW_LOCALE_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_FACEBOOK_URL_FIELD_NUMBER: _ClassVar[int]
    RETAILER_NAME_FIELD_NUMBER: _ClassVar[int]
    RETAILER_IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    response: str
    first_name: str
    response_type: str
    town: str
    job_title: str
    reviewer_segment: str
    review_url: str
    review_locale: str
    reviewer_facebook_url: str
    retailer_name: str
    retailer_image_url: str
    request_id: str
    def __init__(self, response: _Optional[str] = ..., first_name: _Optional[str] = ..., response_type: _Optional[str] = ..., town: _Optional[str] = ..., job_title: _Optional[str] = ..., reviewer_segment: _Optional[str] = ..., review_url: _Optional[str] = ..., review_locale: _Optional[str] = ..., reviewer_facebook_url: _Optional[str] = ..., retailer_name: _Optional[str] = ..., retailer_image_url: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class IncrementConversationHelpfulRequest(_message.Message):
    __slots__ = ("id", "trkref", "voter_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    TRKREF_FIELD_NUMBER: _ClassVar[int]
    VOTER_ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    trkref: str
    voter_id: str
    def __init__(self, id: _Optional[int] = ..., trkref: _Optional[str] = ..., voter_id: _Optional[str] = ...) -> None: ...

class IncrementConversationUnhelpfulRequest(_message.Message):
    __slots__ = ("id", "trkref", "voter_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    TRKREF_FIELD_NUMBER: _ClassVar[int]
    VOTER_ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    trkref: str
    voter_id: str
    def __init__(self, id: _Optional[int] = ..., trkref: _Optional[str] = ..., voter_id: _Optional[str] = ...) -> None: ...

class IncrementAnswerHelpfulRequest(_message.Message):
    __slots__ = ("id", "trkref", "voter_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    TRKREF_FIELD_NUMBER: _ClassVar[int]
    VOTER_ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    trkref: str
    voter_id: str
    def __init__(self, id: _Optional[int] = ..., trkref: _Optional[str] = ..., voter_id: _Optional[str] = ...) -> None: ...

class IncrementAnswerUnhelpfulRequest(_message.Message):
    __slots__ = ("id", "trkref", "voter_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    TRKREF_FIELD_NUMBER: _ClassVar[int]
    VOTER_ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    trkref: str
    voter_id: str
    def __init__(self, id: _Optional[int] = ..., trkref: _Optional[str] = ..., voter_id: _Optional[str] = ...) -> None: ...

class Report(_message.Message):
    __slots__ = ("reason", "reporter_id")
    REASON_FIELD_NUMBER: _ClassVar[int]
    REPORTER_ID_FIELD_NUMBER: _ClassVar[int]
    reason: ReportReason
    reporter_id: str
    def __init__(self, reason: _Optional[_Union[ReportReason, str]] = ..., reporter_id: _Optional[str] = ...) -> None: ...

class ReportConversationRequest(_message.Message):
    __slots__ = ("id", "trkref", "report")
    ID_FIELD_NUMBER: _ClassVar[int]
    TRKREF_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    id: int
    trkref: str
    report: Report
    def __init__(self, id: _Optional[int] = ..., trkref: _Optional[str] = ..., report: _Optional[_Union[Report, _Mapping]] = ...) -> None: ...

class ReportAnswerRequest(_message.Message):
    __slots__ = ("id", "trkref", "report")
    ID_FIELD_NUMBER: _ClassVar[int]
    TRKREF_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    id: int
    trkref: str
    report: Report
    def __init__(self, id: _Optional[int] = ..., trkref: _Optional[str] = ..., report: _Optional[_Union[Report, _Mapping]] = ...) -> None: ...

class EraseConversationRequest(_message.Message):
    __slots__ = ("id", "trkref", "decision")
    ID_FIELD_NUMBER: _ClassVar[int]
    TRKREF_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    id: int
    trkref: str
    decision: DecisionNote
    def __init__(self, id: _Optional[int] = ..., trkref: _Optional[str] = ..., decision: _Optional[_Union[DecisionNote, _Mapping]] = ...) -> None: ...

class EraseAnswerRequest(_message.Message):
    __slots__ = ("id", "trkref", "decision")
    ID_FIELD_NUMBER: _ClassVar[int]
    TRKREF_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    id: int
    trkref: str
    decision: DecisionNote
    def __init__(self, id: _Optional[int] = ..., trkref: _Optional[str] = ..., decision: _Optional[_Union[DecisionNote, _Mapping]] = ...) -> None: ...

class ApproveConversationRequest(_message.Message):
    __slots__ = ("id", "trkref", "decision")
    ID_FIELD_NUMBER: _ClassVar[int]
    TRKREF_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    id: int
    trkref: str
    decision: DecisionNote
    def __init__(self, id: _Optional[int] = ..., trkref: _Optional[str] = ..., decision: _Optional[_Union[DecisionNote, _Mapping]] = ...) -> None: ...

class RejectConversationRequest(_message.Message):
    __slots__ = ("id", "trkref", "decision")
    ID_FIELD_NUMBER: _ClassVar[int]
    TRKREF_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    id: int
    trkref: str
    decision: DecisionNote
    def __init__(self, id: _Optional[int] = ..., trkref: _Optional[str] = ..., decision: _Optional[_Union[DecisionNote, _Mapping]] = ...) -> None: ...

class ApproveAnswerRequest(_message.Message):
    __slots__ = ("id", "trkref", "decision")
    ID_FIELD_NUMBER: _ClassVar[int]
    TRKREF_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    id: int
    trkref: str
    decision: DecisionNote
    def __init__(self, id: _Optional[int] = ..., trkref: _Optional[str] = ..., decision: _Optional[_Union[DecisionNote, _Mapping]] = ...) -> None: ...

class RejectAnswerRequest(_message.Message):
    __slots__ = ("id", "trkref", "decision")
    ID_FIELD_NUMBER: _ClassVar[int]
    TRKREF_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    id: int
    trkref: str
    decision: DecisionNote
    def __init__(self, id: _Optional[int] = ..., trkref: _Optional[str] = ..., decision: _Optional[_Union[DecisionNote, _Mapping]] = ...) -> None: ...

class DecisionNote(_message.Message):
    __slots__ = ("reason", "note")
    REASON_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    reason: str
    note: str
    def __init__(self, reason: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class ModerationDecision(_message.Message):
    __slots__ = ("id", "target", "target_id", "from_status", "to_status", "decided_by", "decided_at", "reason", "note")
    ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_STATUS_FIELD_NUMBER: _ClassVar[int]
    TO_STATUS_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    id: int
    target: str
    target_id: int
    from_status: Status
    to_status: Status
    decided_by: str
    decided_at: _timestamp_pb2.Timestamp
    reason: str
    note: str
    def __init__(self, id: _Optional[int] = ..., target: _Optional[str] = ..., target_id: _Optional[int] = ..., from_status: _Optional[_Union[Status, str]] = ..., to_status: _Optional[_Union[Status, str]] = ..., decided_by: _Optional[str] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class ListModerationQueueRequest(_message.Message):
    __slots__ = ("trkref", "page_size", "page_token")
    TRKREF_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    trkref: str
    page_size: int
    page_token: str
    def __init__(self, trkref: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ModerationQueueItem(_message.Message):
    __slots__ = ("kind", "conversation", "answer", "reports")
    KIND_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    conversation: Conversation
    answer: Answer
    reports: _containers.RepeatedCompositeFieldContainer[ReportCount]
    def __init__(self, kind: _Optional[str] = ..., conversation: _Optional[_Union[Conversation, _Mapping]] = ..., answer: _Optional[_Union[Answer, _Mapping]] = ..., reports: _Optional[_Iterable[_Union[ReportCount, _Mapping]]] = ...) -> None: ...

class ReportCount(_message.Message):
    __slots__ = ("reason", "count")
    REASON_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    reason: ReportReason
    count: int
    def __init__(self, reason: _Optional[_Union[ReportReason, str]] = ..., count: _Optional[int] = ...) -> None: ...

class ListModerationQueueResponse(_message.Message):
    __slots__ = ("items", "next_page_token")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ModerationQueueItem]
    next_page_token: str
    def __init__(self, items: _Optional[_Iterable[_Union[ModerationQueueItem, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListModerationDecisionsRequest(_message.Message):
    __slots__ = ("trkref", "page_size", "page_token")
    TRKREF_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    trkref: str
    page_size: int
    page_token: str
    def __init__(self, trkref: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListModerationDecisionsResponse(_message.Message):
    __slots__ = ("decisions", "next_page_token")
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    decisions: _containers.RepeatedCompositeFieldContainer[ModerationDecision]
    next_page_token: str
    def __init__(self, decisions: _Optional[_Iterable[_Union[ModerationDecision, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class BlockedTerm(_message.Message):
    __slots__ = ("term",)
    TERM_FIELD_NUMBER: _ClassVar[int]
    term: str
    def __init__(self, term: _Optional[str] = ...) -> None: ...

class NewBlockedTerm(_message.Message):
    __slots__ = ("term",)
    TERM_FIELD_NUMBER: _ClassVar[int]
    term: str
    def __init__(self, term: _Optional[str] = ...) -> None: ...

class ListBlockedTermsRequest(_message.Message):
    __slots__ = ("trkref", "page_size", "page_token")
    TRKREF_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    trkref: str
    page_size: int
    page_token: str
    def __init__(self, trkref: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListBlockedTermsResponse(_message.Message):
    __slots__ = ("blocked_terms", "next_page_token")
    BLOCKED_TERMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    blocked_terms: _containers.RepeatedCompositeFieldContainer[BlockedTerm]
    next_page_token: str
    def __init__(self, blocked_terms: _Optional[_Iterable[_Union[BlockedTerm, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CreateBlockedTermRequest(_message.Message):
    __slots__ = ("trkref", "blocked_term")
    TRKREF_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_TERM_FIELD_NUMBER: _ClassVar[int]
    trkref: str
    blocked_term: NewBlockedTerm
    def __init__(self, trkref: _Optional[str] = ..., blocked_term: _Optional[_Union[NewBlockedTerm, _Mapping]] = ...) -> None: ...

class DeleteBlockedTermRequest(_message.Message):
    __slots__ = ("trkref", "term")
    TRKREF_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    trkref: str
    term: str
    def __init__(self, trkref: _Optional[str] = ..., term: _Optional[str] = ...) -> None: ...
