"""Constants shared by the client, the batch runner and the configuration."""

# The most rows one PropertyRadar request returns (the API's probable cap): the largest
# purchase page, and the size of every free Purchase=0 RadarID snapshot page.
MAX_ROWS_PER_REQUEST = 1000
# The project's default page size: well inside that cap, and small enough that a lost
# page costs little.
DEFAULT_BATCH_SIZE = 400
MAX_BATCH_SIZE = MAX_ROWS_PER_REQUEST
# Purchase requests one job may have in flight: more threads than this buy little more
# speed and put more paid-for requests at risk when a work horse is killed.
MAX_CONCURRENCY = 16

# The most records one job may be asked to buy (max_records), in the form and the API.
MAX_RECORDS_LIMIT = 10_000_000

# A job's name, in characters: the column's size, checked by the form and the API.
JOB_NAME_MAX_LENGTH = 200

DEFAULT_API_URL = "https://api.propertyradar.com"
DEFAULT_QUEUE = "radar"
