-- The configuration operators want a node to run (JSON of controller::report::DesiredConfig);
-- handed to its agent with every report answer.
ALTER TABLE nodes ADD COLUMN desired_config TEXT;
