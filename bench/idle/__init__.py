"""What an idle LLMDeployment costs the operator: CPU per minute with the scheduler against the
per-object timer it replaced (`python -m bench.idle --n 300`)."""
