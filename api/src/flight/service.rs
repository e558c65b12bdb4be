//! The Flight SQL service: handshake, catalog listings, statements and prepared
//! statements over the gold tables.

use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfoData};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandGetCatalogs, CommandGetCrossReference,
    CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys, CommandGetPrimaryKeys,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandGetXdbcTypeInfo,
    CommandPreparedStatementQuery, CommandStatementQuery, DoPutPreparedStatementResult,
    ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    BasicAuth, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse,
    IpcMessage, SchemaAsIpc, Ticket,
};
use arrow_ipc::writer::IpcWriteOptions;
use arrow_schema::{Schema, SchemaRef};
use base64::Engine;
use futures::{Stream, TryStreamExt};
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::Claims;
use crate::flight::catalog::{CATALOG, GoldTable};
use crate::flight::guard::claims_of;
use crate::flight::keys::{self, KeyRequest};
use crate::flight::query::{QueryHandle, QueryRunner};
use crate::flight::sql::{self, CheckedQuery};
use crate::flight::type_info;
use crate::login::LoginError;
use crate::state::AppState;

type DoGetStream = <AurumFlightSql as FlightService>::DoGetStream;
type HandshakeStream = Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>;

/// Aurum's Flight SQL service.
pub struct AurumFlightSql {
    state: Arc<AppState>,
    runner: QueryRunner,
    sql_info: SqlInfoData,
    type_info: XdbcTypeInfoData,
}

fn sql_info() -> Result<SqlInfoData, Status> {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "Aurum gold datamarts");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    // The Arrow IPC format version (Schema.fbs MetadataVersion V5).
    b.append(SqlInfo::FlightSqlServerArrowVersion, "1.5");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(SqlInfo::FlightSqlServerTransaction, 0i32);
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(SqlInfo::SqlQuotedIdentifierCase, 3i32);
    b.append(SqlInfo::SqlIdentifierCase, 2i32);
    b.append(SqlInfo::SqlSearchStringEscape, "\\");
    b.append(SqlInfo::SqlTransactionsSupported, false);
    b.build()
        .map_err(|e| Status::internal(format!("SqlInfo: {e}")))
}

fn schema_ipc(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: arrow_schema::ArrowError| Status::internal(e.to_string()))?;
    Ok(bytes)
}

fn flight_info(
    schema: &Schema,
    ticket: bytes::Bytes,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let endpoint = FlightEndpoint::new().with_ticket(Ticket { ticket });
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(e.to_string()))?
        .with_endpoint(endpoint)
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

/// The FlightInfo of a catalog command: its result schema, and the command itself
/// as the ticket (DoGet dispatches on it).
fn metadata_info<C: ProstMessageExt>(
    request: Request<FlightDescriptor>,
    schema: SchemaRef,
    command: C,
) -> Result<Response<FlightInfo>, Status> {
    claims_of(&request)?;
    flight_info(
        &schema,
        command.as_any().encode_to_vec().into(),
        request.into_inner(),
    )
}

fn encode_batches(
    schema: SchemaRef,
    batches: impl Stream<Item = Result<RecordBatch, FlightError>> + Send + 'static,
) -> Response<DoGetStream> {
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(batches)
        .map_err(Status::from);
    Response::new(Box::pin(stream))
}

fn one_batch(batch: Result<RecordBatch, FlightError>) -> Response<DoGetStream> {
    match batch {
        Ok(batch) => encode_batches(
            batch.schema(),
            futures::stream::once(async move { Ok(batch) }),
        ),
        Err(e) => Response::new(Box::pin(futures::stream::once(async move {
            Err(Status::internal(e.to_string()))
        }))),
    }
}

/// The user name and password of a handshake: `authorization: Basic ...` metadata
/// (what ADBC, JDBC and pyarrow send), else a `BasicAuth` message as payload.
fn basic_credentials(
    metadata: &tonic::metadata::MetadataMap,
    first_payload: Option<&[u8]>,
) -> Result<(String, String), Status> {
    let bad = || Status::unauthenticated("send basic credentials (user name and password)");
    if let Some(value) = metadata.get("authorization") {
        let value = value.to_str().map_err(|_| bad())?;
        let encoded = match value.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("basic") => rest.trim(),
            _ => return Err(bad()),
        };
        // Go's Flight client (under ADBC) sends unpadded base64, others pad it.
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let decoded = engine.decode(encoded).map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let (user, password) = text.split_once(':').ok_or_else(bad)?;
        return Ok((user.to_string(), password.to_string()));
    }
    let auth = first_payload
        .and_then(|p| BasicAuth::decode(p).ok())
        .filter(|a| !a.username.is_empty())
        .ok_or_else(bad)?;
    Ok((auth.username, auth.password))
}

impl AurumFlightSql {
    /// A service over `state`'s users and keys, running queries with `runner`.
    pub fn new(state: Arc<AppState>, runner: QueryRunner) -> Result<Self, Status> {
        Ok(Self {
            state,
            runner,
            sql_info: sql_info()?,
            type_info: type_info::type_info()?,
        })
    }

    /// Checks `text` and that `claims` may read every table it touches.
    fn check(&self, text: &str, claims: &Claims) -> Result<CheckedQuery, Status> {
        let checked = sql::check(text, &self.state.schema)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if let Some(t) = checked.tables.iter().find(|t| !t.readable_by(claims.role)) {
            return Err(Status::permission_denied(format!(
                "{} is readable by admins only",
                t.name()
            )));
        }
        Ok(checked)
    }

    async fn run(
        &self,
        handle: &QueryHandle,
        claims: &Claims,
    ) -> Result<Response<DoGetStream>, Status> {
        let checked = self.check(&handle.sql, claims)?;
        tracing::debug!(user = %claims.sub, sql = %checked.sql, "flight query");
        let (schema, batches) = self
            .runner
            .run(&checked, &handle.params, self.state.clone())
            .await?;
        Ok(encode_batches(schema, batches))
    }

    fn visible_tables(claims: &Claims) -> impl Iterator<Item = GoldTable> {
        GoldTable::visible_to(claims.role)
    }
}

#[tonic::async_trait]
impl FlightSqlService for AurumFlightSql {
    type FlightService = AurumFlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<HandshakeStream>, Status> {
        let peer = request
            .remote_addr()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
        let metadata = request.metadata().clone();
        let ip = self.state.trusted_proxies.client_ip(
            peer,
            metadata
                .get_all("x-forwarded-for")
                .iter()
                .map(|v| v.as_bytes()),
        );
        let first = if metadata.contains_key("authorization") {
            None
        } else {
            request.into_inner().message().await?.map(|m| m.payload)
        };
        let (user, password) = basic_credentials(&metadata, first.as_deref())?;
        let issued = crate::login::login(&self.state, &user, password, ip)
            .await
            .map_err(|e| match e {
                LoginError::RateLimited(_) => Status::resource_exhausted(e.to_string()),
                LoginError::WrongCredentials => Status::unauthenticated(e.to_string()),
                LoginError::Unavailable | LoginError::CannotIssue => {
                    Status::unavailable(e.to_string())
                }
            })?;
        let bearer = MetadataValue::try_from(format!("Bearer {}", issued.token))
            .map_err(|_| Status::internal("token is not valid metadata"))?;
        let response = HandshakeResponse {
            protocol_version: 0,
            payload: issued.token.into_bytes().into(),
        };
        let stream: HandshakeStream = Box::pin(futures::stream::iter([Ok(response)]));
        let mut response = Response::new(stream);
        response.metadata_mut().insert("authorization", bearer);
        Ok(response)
    }

    // ------------------------------------------------------------------ statements

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let claims = claims_of(&request)?;
        let checked = self.check(&query.query, &claims)?;
        let described = self.runner.describe(&checked).await?;
        let handle = QueryHandle {
            sql: query.query,
            params: Vec::new(),
        };
        let ticket = TicketStatementQuery {
            statement_handle: handle.encode(),
        };
        flight_info(
            &described.schema,
            ticket.as_any().encode_to_vec().into(),
            request.into_inner(),
        )
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let claims = claims_of(&request)?;
        let handle = QueryHandle::decode(&ticket.statement_handle)?;
        self.run(&handle, &claims).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let claims = claims_of(&request)?;
        let checked = self.check(&query.query, &claims)?;
        let described = self.runner.describe(&checked).await?;
        let handle = QueryHandle {
            sql: query.query,
            params: Vec::new(),
        };
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.encode(),
            dataset_schema: schema_ipc(&described.schema)?,
            parameter_schema: schema_ipc(&described.parameters)?,
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        _request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        // Handles carry their whole state: nothing is held on the server.
        Ok(())
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let claims = claims_of(&request)?;
        let mut handle = QueryHandle::decode(&query.prepared_statement_handle)?;
        self.check(&handle.sql, &claims)?;
        let data = request.into_inner().map_err(FlightError::from);
        let batches: Vec<RecordBatch> = FlightRecordBatchStream::new_from_flight_data(data)
            .try_collect()
            .await
            .map_err(|e| Status::invalid_argument(format!("bad parameter batch: {e}")))?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if rows > 1 {
            return Err(Status::invalid_argument(format!(
                "bind one row of parameters per execution (got {rows})"
            )));
        }
        handle.params = match batches.iter().find(|b| b.num_rows() == 1) {
            None => Vec::new(),
            Some(batch) => {
                let options = arrow_cast::display::FormatOptions::default();
                batch
                    .columns()
                    .iter()
                    .map(|column| {
                        if column.is_null(0) {
                            return Ok(None);
                        }
                        let formatter =
                            arrow_cast::display::ArrayFormatter::try_new(column.as_ref(), &options)
                                .map_err(|e| Status::invalid_argument(e.to_string()))?;
                        Ok(Some(formatter.value(0).to_string()))
                    })
                    .collect::<Result<Vec<_>, Status>>()?
            }
        };
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(handle.encode()),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let claims = claims_of(&request)?;
        let handle = QueryHandle::decode(&cmd.prepared_statement_handle)?;
        let checked = self.check(&handle.sql, &claims)?;
        let described = self.runner.describe(&checked).await?;
        flight_info(
            &described.schema,
            cmd.as_any().encode_to_vec().into(),
            request.into_inner(),
        )
    }

    async fn do_get_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let claims = claims_of(&request)?;
        let handle = QueryHandle::decode(&cmd.prepared_statement_handle)?;
        self.run(&handle, &claims).await
    }

    // ------------------------------------------------------------------ metadata

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(request, query.into_builder().schema(), query)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        claims_of(&request)?;
        let mut builder = query.into_builder();
        builder.append(CATALOG);
        Ok(one_batch(builder.build()))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(request, query.clone().into_builder().schema(), query)
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        claims_of(&request)?;
        let mut builder = query.into_builder();
        builder.append(CATALOG, &self.state.schema);
        Ok(one_batch(builder.build()))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(request, query.clone().into_builder().schema(), query)
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let claims = claims_of(&request)?;
        // The builder applies the command's catalog, schema, table and type filters.
        let mut builder = query.into_builder();
        for table in Self::visible_tables(&claims) {
            builder
                .append(
                    CATALOG,
                    &self.state.schema,
                    table.name(),
                    "TABLE",
                    &table.schema(),
                )
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        Ok(one_batch(builder.build()))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(request, query.into_builder().schema(), query)
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        claims_of(&request)?;
        let mut builder = query.into_builder();
        builder.append("TABLE");
        Ok(one_batch(builder.build()))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(
            request,
            query.clone().into_builder(&self.sql_info).schema(),
            query,
        )
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        claims_of(&request)?;
        Ok(one_batch(query.into_builder(&self.sql_info).build()))
    }

    // ------------------------------------------------------------------ keys, types

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(request, keys::primary_keys_schema(), query)
    }

    async fn do_get_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let claims = claims_of(&request)?;
        let key_request = KeyRequest {
            catalog: query.catalog.as_deref(),
            db_schema: query.db_schema.as_deref(),
            table: &query.table,
        };
        let batch = keys::primary_keys(
            key_request,
            &self.state.schema,
            Self::visible_tables(&claims),
        );
        Ok(one_batch(batch.map_err(FlightError::Arrow)))
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(request, keys::foreign_keys_schema(), query)
    }

    async fn do_get_imported_keys(
        &self,
        _query: CommandGetImportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        claims_of(&request)?;
        Ok(one_batch(Ok(keys::no_foreign_keys())))
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(request, keys::foreign_keys_schema(), query)
    }

    async fn do_get_exported_keys(
        &self,
        _query: CommandGetExportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        claims_of(&request)?;
        Ok(one_batch(Ok(keys::no_foreign_keys())))
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(request, keys::foreign_keys_schema(), query)
    }

    async fn do_get_cross_reference(
        &self,
        _query: CommandGetCrossReference,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        claims_of(&request)?;
        Ok(one_batch(Ok(keys::no_foreign_keys())))
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(request, query.into_builder(&self.type_info).schema(), query)
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        claims_of(&request)?;
        Ok(one_batch(query.into_builder(&self.type_info).build()))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_from_metadata_or_payload() {
        let mut md = tonic::metadata::MetadataMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode("alice:pa:ss");
        md.insert("authorization", format!("Basic {encoded}").parse().unwrap());
        assert_eq!(
            basic_credentials(&md, None).unwrap(),
            ("alice".to_string(), "pa:ss".to_string())
        );
        let payload = BasicAuth {
            username: "bob".into(),
            password: "pw".into(),
        }
        .encode_to_vec();
        let empty = tonic::metadata::MetadataMap::new();
        assert_eq!(
            basic_credentials(&empty, Some(&payload)).unwrap(),
            ("bob".to_string(), "pw".to_string())
        );
        assert_eq!(
            basic_credentials(&empty, None).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        let unpadded = base64::engine::general_purpose::STANDARD_NO_PAD.encode("al:pw");
        md.insert(
            "authorization",
            format!("Basic {unpadded}").parse().unwrap(),
        );
        assert_eq!(
            basic_credentials(&md, None).unwrap(),
            ("al".to_string(), "pw".to_string())
        );
        md.insert("authorization", "Bearer x".parse().unwrap());
        assert!(basic_credentials(&md, None).is_err());
    }
}
