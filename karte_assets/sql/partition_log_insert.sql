-- BigQuery only: record that @table_name's partition @partition_date now holds @row_count rows.
MERGE partition_log AS log
USING (SELECT @table_name AS table_name, @partition_date AS partition_date) AS written
ON log.table_name = written.table_name AND log.partition_date = written.partition_date
WHEN MATCHED THEN
  UPDATE SET row_count = @row_count, written_at = CURRENT_TIMESTAMP()
WHEN NOT MATCHED THEN
  INSERT (table_name, partition_date, row_count, written_at)
  VALUES (@table_name, @partition_date, @row_count, CURRENT_TIMESTAMP())
