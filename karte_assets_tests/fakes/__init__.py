"""Loopback stand-ins for Google services, spoken to by the official clients."""
