from llmrollout.handlers.llmdeployment import EVENT_MESSAGE_BYTES, event_message


def test_event_messages_fit_the_apiservers_byte_limit() -> None:
    long = "ttft p95 0.31s … " * 200
    cut = event_message(long)
    assert len(cut.encode()) <= EVENT_MESSAGE_BYTES < 1024
    assert cut.startswith("ttft p95") and "[...]" in cut
    assert event_message("short") == "short"
