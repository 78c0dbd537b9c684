"""The results database: run directories loaded into SQLite (the default, under results/) or PostgreSQL
(a team's shared store), for `history`, `compare --baseline` and `report` (see README, "Results database")."""
