"""Model-facing machinery: prompt encoding, sampling rollouts, and per-token log-probs."""
