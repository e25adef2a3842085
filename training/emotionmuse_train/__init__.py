"""Offline toolkit for EmotionMuse's recommendation model: catalogue, valence-arousal labels,
simulated interactions, the emotion-conditioned Bi-LSTM and its baselines, evaluation, export."""
