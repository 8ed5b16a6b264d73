"""Anomaly detection: which users of a day behave like bots or cheaters, and why.

``features`` turns the day's ``user_behaviour_features`` rows into a matrix, ``detectors`` scores
it (Isolation Forest or ECOD without labels, LightGBM with a client's known cheaters), and
``scoring`` flags a client's share of users and writes down the features that drove each flag.
"""
