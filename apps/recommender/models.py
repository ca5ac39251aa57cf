"""Recommender rows: the catalogue (items) and what users did with them (events)."""
from __future__ import annotations

from django.db import models
from django.utils import timezone


class Item(models.Model):
    """One catalogue item. Its pk is its key in the shared vector space "recommender" (services/recommender/vectors.py)."""

    external_id = models.CharField(max_length=200, unique=True)  # the shop's id, as the API and imports name it
    title = models.CharField(max_length=500, blank=True)
    description = models.TextField(blank=True)
    category = models.CharField(max_length=200, blank=True, db_index=True)
    tags = models.JSONField(default=list, blank=True)
    price = models.FloatField(null=True, blank=True)
    in_stock = models.BooleanField(default=True)
    updated_at = models.DateTimeField(null=True, blank=True)  # the shop's timestamp, as sent
    content_hash = models.CharField(max_length=64)  # of every field sent: unchanged → re-sending does nothing
    text_hash = models.CharField(max_length=64)  # of the embedded text: changed → re-embed
    created_at = models.DateTimeField(default=timezone.now, db_index=True)  # first stored here: "new in C", item age

    def __str__(self) -> str:
        return self.external_id


class Event(models.Model):
    VIEW, CLICK, CART, PURCHASE, NOT_INTERESTED = "view", "click", "cart", "purchase", "not_interested"
    # not_interested: the user dismissed the item; it is demoted for them and counts in no profile or popularity
    TYPES = [(VIEW, "view"), (CLICK, "click"), (CART, "cart"), (PURCHASE, "purchase"), (NOT_INTERESTED, "not interested")]

    event_id = models.CharField(max_length=200, unique=True)  # the client's id: the same event twice is stored once
    user_id = models.CharField(max_length=200, db_index=True)
    item_external_id = models.CharField(max_length=200)  # kept even when the item is not (yet) in the catalogue
    item = models.ForeignKey(Item, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    type = models.CharField(max_length=16, choices=TYPES)
    timestamp = models.DateTimeField(db_index=True)  # when the user did it, as the client sent it
    # When the suite received it: retraining counts new events by this, so a late event with an old timestamp still counts.
    received_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["user_id", "-timestamp"], name="reco_event_user_time")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.type} {self.item_external_id}"


class Impression(models.Model):
    """One answer shown: which items, in which order, to whom (user or anonymous session), from which page.

    For click-through measurement (a later click on a shown item) and position-debiased training of the ranker.
    """

    request_id = models.CharField(max_length=64, unique=True)  # returned with the answer: a client may quote it
    user_id = models.CharField(max_length=200, blank=True, db_index=True)  # empty for an anonymous session
    items = models.JSONField(default=list)  # external ids in the order shown
    offset = models.PositiveIntegerField(default=0)  # position of the first item in the whole ranking
    strategy = models.CharField(max_length=32)
    ranker = models.CharField(max_length=64, blank=True)  # what ranked it: "recommender:v<N>" or "snapshot:<name>" ("" = the formula)
    shown_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"{self.user_id or 'session'} {len(self.items)} items"


class MerchRule(models.Model):
    """A merchandiser's rule over every recommendation list (services/recommender/merch.py applies them).

    pin: `item` at `position` (1 = first) of the first page; boost: `item` raised by `weight` times the spread of
    the list's scores (1.0: to the top, 0.1: a nudge; negative lowers); quota: at most `max_per_page` items of
    `category` in each page.
    """

    PIN, BOOST, QUOTA = "pin", "boost", "quota"
    KINDS = [(PIN, "pin"), (BOOST, "boost"), (QUOTA, "category quota")]

    kind = models.CharField(max_length=16, choices=KINDS)
    item = models.ForeignKey(Item, null=True, blank=True, on_delete=models.CASCADE, related_name="merch_rules")
    position = models.PositiveIntegerField(null=True, blank=True)
    weight = models.FloatField(null=True, blank=True)
    category = models.CharField(max_length=200, blank=True)
    max_per_page = models.PositiveIntegerField(null=True, blank=True)
    active = models.BooleanField(default=True)
    note = models.CharField(max_length=200, blank=True)  # why (the campaign), for the next merchandiser

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from services.errors import SuiteError
        from services.recommender.merch import rule_check

        try:
            rule_check(kind=self.kind, item=self.item_id, position=self.position, weight=self.weight,
                       category=self.category, max_per_page=self.max_per_page)
        except SuiteError as exc:
            raise ValidationError({exc.field or "kind": exc.message}) from None

    def __str__(self) -> str:
        return f"{self.kind} {self.item_id or self.category}"
