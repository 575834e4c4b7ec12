"""Kafka Connect's error headers (`__connect.errors.*`) on our dead letters, so Connect tooling reads them. Pure.

Names and encodings are those of Kafka Connect's `DeadLetterQueueReporter` (context headers on): every value
a UTF-8 string, numbers in decimal. A dead letter carries them after its original headers and our `rdc.*`:

- `__connect.errors.topic`, `.partition`, `.offset`: where the record came from (as `rdc.source.*`);
- `__connect.errors.connector.name`: the consumer group (`RDC_GROUP_ID`), what names a connector's work in Kafka;
- `__connect.errors.stage`: Connect's stage for ours: decode `VALUE_CONVERTER`, map and encode `TRANSFORMATION`,
  send `TASK_PUT`;
- `__connect.errors.class.name`: the class that judged the record (`connector.avro.decoder.Decoder`, ...);
- `__connect.errors.exception.class.name`: `connector.errors.DecodeError` (decode), `MappingError` (map,
  encode), `RecordError` (send);
- `__connect.errors.exception.message`: `<rdc.error.reason>: ` and the detail *without the record's values*
  (as the logs have it); with them only under `RDC_LOG_RECORD_VALUES=true`.

Connect's `task.id` and `exception.stacktrace` are not written: no task number means anything here, and a
refusal is a verdict, not a stack. The message keeps values out because Connect tools show it in lists,
alerts and their own logs; the full detail stays in `rdc.error.detail` (decision 0019).
"""

from __future__ import annotations

from typing import Final

from connector.settle.dead_letters import DETAIL_CAP, DeadLetter, Headers, cap_utf8

__all__ = [
    "CONNECTOR_NAME",
    "CONNECT_PREFIX",
    "EXCEPTION_CLASS",
    "EXCEPTION_MESSAGE",
    "EXECUTING_CLASS",
    "ORIG_OFFSET",
    "ORIG_PARTITION",
    "ORIG_TOPIC",
    "STAGE",
    "connect_headers",
]

CONNECT_PREFIX: Final = "__connect.errors."
ORIG_TOPIC: Final = CONNECT_PREFIX + "topic"
ORIG_PARTITION: Final = CONNECT_PREFIX + "partition"
ORIG_OFFSET: Final = CONNECT_PREFIX + "offset"
CONNECTOR_NAME: Final = CONNECT_PREFIX + "connector.name"
STAGE: Final = CONNECT_PREFIX + "stage"
EXECUTING_CLASS: Final = CONNECT_PREFIX + "class.name"
EXCEPTION_CLASS: Final = CONNECT_PREFIX + "exception.class.name"
EXCEPTION_MESSAGE: Final = CONNECT_PREFIX + "exception.message"

#: our stage -> (Connect's `Stage` name, the class that judges the record there, the error's class)
_STAGES: Final = {
    "decode": ("VALUE_CONVERTER", "connector.avro.decoder.Decoder", "connector.errors.DecodeError"),
    "map": ("TRANSFORMATION", "connector.mapping.mappings.Mappings", "connector.errors.MappingError"),
    "encode": ("TRANSFORMATION", "connector.mapping.event.encode_event", "connector.errors.MappingError"),
    "send": ("TASK_PUT", "connector.deliver.attempt.Sender", "connector.errors.RecordError"),
}
_UNKNOWN: Final = ("TASK_PUT", "connector.pipeline.Pipeline", "connector.errors.RecordError")


def connect_headers(letter: DeadLetter, *, connector_name: str | None = None, with_values: bool = False) -> Headers:
    """Kafka Connect's headers for `letter`, in the order Connect writes them. `connector_name`: the group
    (None: no `connector.name` header); `with_values`: the message quotes the record's values (the full
    detail) instead of the detail the logs get. At most ~4.5 KB: the topic and a message capped at
    `DETAIL_CAP` bytes."""
    stage, executing, exception = _STAGES.get(letter.stage, _UNKNOWN)
    detail = letter.detail if with_values else letter.log_detail
    message = f"{letter.reason}: {detail}" if detail else letter.reason
    named = [] if connector_name is None else [(CONNECTOR_NAME, connector_name.encode())]
    return [
        (ORIG_TOPIC, letter.topic.encode()),
        (ORIG_PARTITION, str(letter.partition).encode()),
        (ORIG_OFFSET, str(letter.offset).encode()),
        *named,
        (STAGE, stage.encode()),
        (EXECUTING_CLASS, executing.encode()),
        (EXCEPTION_CLASS, exception.encode()),
        (EXCEPTION_MESSAGE, cap_utf8(message, DETAIL_CAP)),
    ]
