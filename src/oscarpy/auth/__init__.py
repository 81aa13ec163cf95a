"""Who is calling: the admin's credentials and the dashboard's signed sessions.

Below every edge (REST API, S3, dashboard), so that each edge can check a caller without
importing another edge.
"""
