"""The Celery configuration each broker gets: RabbitMQ's durability settings, Redis unchanged."""

from __future__ import annotations

import pytest
from celery import Celery

from core.settings import ConfigurationError, load_settings
from tasks.celery_app import ALL_QUEUES, configure


def configured(**overrides: object) -> Celery:
    app = Celery("probe")
    configure(app, load_settings(**overrides))
    return app


def test_broker_url_defaults_to_redis_url():
    app = configured(redis_url="redis://cache.internal:6379/2", broker_url="")

    assert app.conf.broker_url == "redis://cache.internal:6379/2"
    assert app.conf.result_backend == "redis://cache.internal:6379/2"


def test_rabbitmq_gets_quorum_queues_publisher_confirms_and_late_acks():
    app = configured(broker_url="amqp://user:pw@rabbit.internal:5672/billing")

    assert app.conf.broker_url == "amqp://user:pw@rabbit.internal:5672/billing"
    assert app.conf.broker_transport_options["confirm_publish"] is True
    queues = {queue.name: queue for queue in app.conf.task_queues}
    assert set(queues) == set(ALL_QUEUES)
    assert {q.queue_arguments["x-queue-type"] for q in queues.values()} == {"quorum"}
    # Native delayed delivery (a retry's countdown on quorum queues) needs topic exchanges.
    assert {q.exchange.type for q in queues.values()} == {"topic"}
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost


def test_redis_queues_are_plain():
    app = configured(broker_url="redis://127.0.0.1:6379/0")

    assert {q.queue_arguments for q in app.conf.task_queues} == {None}
    assert "confirm_publish" not in app.conf.broker_transport_options


def test_an_unknown_broker_scheme_stops_start_up_naming_the_variable():
    with pytest.raises(ConfigurationError, match="BROKER_URL"):
        load_settings(broker_url="kafka://broker:9092")
