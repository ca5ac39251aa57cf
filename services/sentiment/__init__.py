"""Market sentiment logic: message parsing, scoring, entities, storage, aggregates, alerts and the Kafka topics."""
