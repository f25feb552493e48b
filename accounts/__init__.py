"""Users, approved groups and the OAuth 2.0 issuance rules; knows nothing of streaming."""
