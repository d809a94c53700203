"""The clients search teams already run, spoken by clickstats: Algolia Insights, OpenSearch UBI."""
