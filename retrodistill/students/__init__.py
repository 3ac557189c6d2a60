"""Students: bi-encoders (and, later, late-interaction models) that embed queries and passages."""
