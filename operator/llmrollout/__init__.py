"""llmrollout: closed-loop rollout of LLM model and prompt versions on Kubernetes."""
