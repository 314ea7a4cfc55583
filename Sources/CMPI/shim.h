// Open MPI's C interface for LongConvDistributed. The predefined handles are macros Swift cannot
// import (casts of the addresses of globals), so they are returned by these functions.
#include <mpi.h>

static inline MPI_Comm lck_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype lck_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype lck_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype lck_mpi_uint64(void) { return MPI_UINT64_T; }
static inline int lck_mpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
static inline MPI_Request lck_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Status *lck_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline void *lck_mpi_in_place(void) { return MPI_IN_PLACE; }
