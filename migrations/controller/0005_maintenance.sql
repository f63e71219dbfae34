-- Maintenance (JSON of controller::db::nodes::Maintenance): a node an operator is working on is
-- left out of every tree and of the alerts until the maintenance ends.
ALTER TABLE nodes ADD COLUMN maintenance TEXT;
